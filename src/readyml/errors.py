"""The one exception hierarchy for errors a user can cause.

Every class knows its HTTP status, so the server has one handler, and the CLI turns any
of them into one red line and exit code 2. Tracebacks are for bugs, not for users::

    ReadymlError
     ├── ConfigError            readyml.yaml (or a flag) is wrong
     ├── DataError              the data does not match what was declared
     │    ├── SchemaError
     │    └── AnomalyError
     ├── FlavorError            a model cannot be fitted, saved or loaded by its flavor
     │    └── NumericalInstability  training diverged (NaN/inf loss, weights, dead units)
     ├── PipelineError          a pipeline step failed (wraps the step's own error)
     ├── RegistryError
     │    ├── VersionNotFound
     │    ├── AliasError        an alias move that the rules forbid (e.g. a vetoed champion)
     │    └── IntegrityError    an artifact is missing, truncated or tampered with
     ├── ServeError
     │    ├── BadRequest        (PayloadTooLarge 413, UnsupportedMediaType 415,
     │    │                      PredictionFailed 422)
     │    ├── NotFound, MethodNotAllowed, Unauthorized
     │    └── Overloaded
     └── NotFittedError         a fitted attribute was read before the verb that computes it
"""

from __future__ import annotations


class ReadymlError(Exception):
    """Base class of every error a user can cause; the message says what to fix."""

    status_code: int = 400


class ConfigError(ReadymlError):
    """The project spec or a command-line option is invalid."""

    status_code = 422


class DataError(ReadymlError):
    """Data is missing, unreadable, or does not have the declared columns."""

    status_code = 422


class SchemaError(DataError):
    """Data does not conform to the checked-in schema."""


class AnomalyError(DataError):
    """Data validation found anomalies of error severity."""


class FlavorError(ReadymlError):
    """A model flavor cannot fit, save, load or describe the given model."""

    status_code = 422


class NumericalInstability(FlavorError):
    """Training became numerically unstable: a NaN/inf loss, unbounded weights, dead units."""


class PipelineError(ReadymlError):
    """A pipeline step failed; the message names the step."""

    status_code = 500


class RegistryError(ReadymlError):
    """A registry operation cannot be carried out."""

    status_code = 409


class VersionNotFound(RegistryError):
    """A model, version or alias does not exist in the registry."""

    status_code = 404


class AliasError(RegistryError):
    """An alias cannot be moved as asked (for example onto a vetoed version)."""

    status_code = 409


class IntegrityError(RegistryError):
    """An artifact is missing, or its bytes do not match the recorded sha256."""

    status_code = 500


class ServeError(ReadymlError):
    """The server cannot answer a request."""

    status_code = 500


class BadRequest(ServeError):
    """A request body or parameter is invalid."""

    status_code = 400


class Overloaded(ServeError):
    """The server sheds this request because its queue is full."""

    status_code = 503


class NotFound(ServeError):
    """No route, model or version answers this path."""

    status_code = 404


class MethodNotAllowed(ServeError):
    """The path exists but not for this HTTP method; ``allowed`` lists the methods it takes."""

    status_code = 405

    def __init__(self, message: str, *, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class PayloadTooLarge(BadRequest):
    """The body is larger than the server's limit."""

    status_code = 413


class UnsupportedMediaType(BadRequest):
    """The body's content type is not one the route reads."""

    status_code = 415


class Unauthorized(ServeError):
    """The route needs a bearer token and none (or a wrong one) came."""

    status_code = 401


class PredictionFailed(BadRequest):
    """The model raised on this request's input (other requests of its batch are unaffected)."""

    status_code = 422


class NotFittedError(ReadymlError, ValueError, AttributeError):
    """A learned attribute was used before the method that computes it was called."""

    status_code = 500
