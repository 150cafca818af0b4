"""Kubernetes manifests for serving one registered version.

:class:`KubernetesManifests` renders plain manifests (one file per object, ``kubectl apply
-f DIR``): a Deployment probed on the Open Inference Protocol V2 health endpoints
(``/v2/health/ready`` for readiness, ``/v2/health/live`` for liveness and start-up), a
Service, a HorizontalPodAutoscaler, a PodDisruptionBudget, a ConfigMap for the non-secret
settings and a Secret *template* for the store URLs and the management token (the Deployment
only references it: real values never belong in generated files).

Rollouts never drop capacity (``maxUnavailable: 0``). With ``canary``, a second Deployment
(``track: canary``) runs the canary model behind the same Service, so traffic splits by
replica count; with ``argo``, an Argo Rollouts ``Rollout`` replaces the Deployment and steps
the canary's weight with pauses for analysis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from readyml.deploy.container import DEFAULT_PORT, USER_ID, check_image, check_out
from readyml.errors import ConfigError
from readyml.types import ModelRef

HEALTH_READY = "/v2/health/ready"
HEALTH_LIVE = "/v2/health/live"
METRICS_PATH = "/metrics"
ARGO_API = "argoproj.io/v1alpha1"
# Canary weights (percent) and the pause after each, for Argo Rollouts.
ARGO_STEPS: tuple[tuple[int, str], ...] = ((10, "5m"), (50, "10m"))
# Start-up budget: failureThreshold x periodSeconds = 5 minutes to load the model.
STARTUP_PERIOD_S = 10
STARTUP_FAILURES = 30
SECRET_TEMPLATE = "templates/secret.example.yaml"
# A namespace is a DNS-1123 label.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Manifest:
    """One rendered object and the file it goes to."""

    filename: str
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        """The object's kind."""
        return str(self.document["kind"])


class KubernetesManifests:
    """Render and write the manifests of one served model.

    Example:
        >>> k8s = KubernetesManifests(name="iris", image="readyml-iris:v3", model="iris@champion")
        >>> sorted(m.kind for m in k8s.render())[:3]
        ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler']
    """

    def __init__(
        self,
        *,
        name: str,
        image: str,
        model: str,
        namespace: str | None = None,
        replicas: int = 2,
        max_replicas: int = 10,
        cpu_request: str = "500m",
        cpu_limit: str = "2",
        memory_request: str = "512Mi",
        memory_limit: str = "2Gi",
        port: int = DEFAULT_PORT,
        canary: bool = False,
        canary_model: str | None = None,
        canary_image: str | None = None,
        argo: bool = False,
    ) -> None:
        self.name = name
        self.image = image
        self.model = model
        self.namespace = namespace
        self.replicas = replicas
        self.max_replicas = max_replicas
        self.cpu_request = cpu_request
        self.cpu_limit = cpu_limit
        self.memory_request = memory_request
        self.memory_limit = memory_limit
        self.port = port
        self.canary = canary
        self.canary_model = canary_model
        self.canary_image = canary_image
        self.argo = argo

    # -- names ---------------------------------------------------------------------------

    @property
    def app_name(self) -> str:
        """The DNS-1123 name shared by every object: ``readyml-NAME``."""
        cleaned = "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")
        return f"readyml-{cleaned}"[:50]

    def _meta(self, name: str, **labels: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": {**self._labels(), **labels}}
        if self.namespace:
            meta["namespace"] = self.namespace
        return meta

    def _labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": self.app_name,
            "app.kubernetes.io/component": "model-server",
            "app.kubernetes.io/managed-by": "readyml",
        }

    def _selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.app_name}

    # -- rendering -----------------------------------------------------------------------

    def render(self) -> list[Manifest]:
        """Every manifest, in apply order.

        Raises:
            ConfigError: A parameter is out of range or the options contradict each other.
        """
        self._check()
        manifests = [
            Manifest("configmap.yaml", self.config_map()),
            # In a subfolder: `kubectl apply -f DIR` (not recursive) must never apply the
            # template over a Secret made another way.
            Manifest(SECRET_TEMPLATE, self.secret()),
        ]
        if self.argo:
            manifests.append(Manifest("rollout.yaml", self.rollout()))
        else:
            manifests.append(
                Manifest("deployment.yaml", self.deployment("stable", self.image, self.model))
            )
            if self.canary:
                manifests.append(
                    Manifest(
                        "deployment-canary.yaml",
                        self.deployment("canary", self._canary_image(), self._canary_model()),
                    )
                )
        manifests += [
            Manifest("service.yaml", self.service()),
            Manifest("hpa.yaml", self.autoscaler()),
            Manifest("pdb.yaml", self.disruption_budget()),
        ]
        return manifests

    def write(self, out: Path) -> list[Path]:
        """Write each manifest to ``out/FILENAME`` (a new or empty folder); return the paths.

        Raises:
            ConfigError: ``out`` has files in it or is a file, or :meth:`render` refused.
        """
        check_out(out)
        manifests = self.render()
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for manifest in manifests:
            path = out / manifest.filename
            path.parent.mkdir(exist_ok=True)
            path.write_text(yaml.safe_dump(manifest.document, sort_keys=False), encoding="utf-8")
            paths.append(path)
        return paths

    def _check(self) -> None:
        if self.max_replicas < 1:
            raise ConfigError(f"max_replicas: expected 1 or more, found {self.max_replicas}")
        if not 1 <= self.replicas <= self.max_replicas:
            raise ConfigError(
                f"replicas: expected 1 to max_replicas ({self.max_replicas}), found {self.replicas}"
            )
        if self.canary and self.argo:
            raise ConfigError("--canary and --argo: expected one of them, found both")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port: expected 1 to 65535, found {self.port}")
        if self.namespace is not None and DNS_LABEL.fullmatch(self.namespace) is None:
            raise ConfigError(
                "--namespace: expected a DNS-1123 label (lower-case letters, digits and '-', "
                f"at most 63), found {self.namespace!r}"
            )
        check_image("--image", self.image)
        for option, value in (
            ("--canary-model", self.canary_model),
            ("--canary-image", self.canary_image),
        ):
            if value is not None and not self.canary:
                raise ConfigError(f"{option}: expected --canary with it, found no --canary")
        if self.canary_image is not None:
            check_image("--canary-image", self.canary_image)
        if self.canary_model is not None:
            try:
                ModelRef.parse(self.canary_model)
            except ValueError as exc:
                raise ConfigError(f"--canary-model: {exc}") from None

    def _canary_model(self) -> str:
        return self.canary_model or f"{self.model.split('@')[0].split(':')[0]}@challenger"

    def _canary_image(self) -> str:
        return self.canary_image or self.image

    def config_map(self) -> dict[str, Any]:
        """Non-secret settings, read by the server as environment variables."""
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self._meta(f"{self.app_name}-config"),
            "data": {"READYML_MODEL": self.model, "READYML_ARTIFACTS_URL": ""},
        }

    def secret(self) -> dict[str, Any]:
        """A template of the Secret the pods reference; fill in and apply it separately."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self._meta(f"{self.app_name}-secrets"),
            "type": "Opaque",
            "stringData": {
                "READYML_STORE_URL": "postgresql+psycopg://USER:PASSWORD@HOST:5432/readyml",
                # Empty refuses every management call: a template applied unedited
                # (kubectl apply -f DIR) must not enable a token anyone can guess.
                "READYML_SERVE_TOKEN": "",
                "AWS_ACCESS_KEY_ID": "CHANGE-ME",
                "AWS_SECRET_ACCESS_KEY": "CHANGE-ME",
            },
        }

    def pod_template(self, track: str, image: str, model: str) -> dict[str, Any]:
        """The pod: non-root, no privilege escalation, probed on the V2 health endpoints."""
        container = {
            "name": "server",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": self.port, "protocol": "TCP"}],
            "envFrom": [
                {"configMapRef": {"name": f"{self.app_name}-config"}},
                {"secretRef": {"name": f"{self.app_name}-secrets", "optional": True}},
            ],
            "env": [{"name": "READYML_MODEL", "value": model}],
            "resources": {
                "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
                "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
            },
            "startupProbe": self._probe(HEALTH_LIVE, STARTUP_PERIOD_S, STARTUP_FAILURES),
            "readinessProbe": self._probe(HEALTH_READY, 5, 3),
            "livenessProbe": self._probe(HEALTH_LIVE, 10, 3),
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "runAsUser": USER_ID,
                "runAsGroup": USER_ID,
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
        return {
            "metadata": {
                "labels": {**self._labels(), "track": track},
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(self.port),
                    "prometheus.io/path": METRICS_PATH,
                },
            },
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": USER_ID,
                    "runAsGroup": USER_ID,
                    "fsGroup": USER_ID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        }

    def _probe(self, path: str, period_s: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period_s,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        }

    def deployment(self, track: str, image: str, model: str) -> dict[str, Any]:
        """A Deployment of one track (``stable`` or ``canary``)."""
        name = self.app_name if track == "stable" else f"{self.app_name}-{track}"
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self._meta(name, track=track),
            "spec": {
                "replicas": self.replicas if track == "stable" else 1,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": {**self._selector(), "track": track}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": self.pod_template(track, image, model),
            },
        }

    def rollout(self) -> dict[str, Any]:
        """An Argo Rollouts ``Rollout``: canary steps with pauses, never losing capacity."""
        steps: list[dict[str, Any]] = []
        for weight, pause in ARGO_STEPS:
            steps += [{"setWeight": weight}, {"pause": {"duration": pause}}]
        return {
            "apiVersion": ARGO_API,
            "kind": "Rollout",
            "metadata": self._meta(self.app_name),
            "spec": {
                "replicas": self.replicas,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": self._selector()},
                "template": self.pod_template("stable", self.image, self.model),
                "strategy": {"canary": {"maxUnavailable": 0, "maxSurge": 1, "steps": steps}},
            },
        }

    def service(self) -> dict[str, Any]:
        """One Service in front of every track."""
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self._meta(self.app_name),
            "spec": {
                "type": "ClusterIP",
                "selector": self._selector(),
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }

    def autoscaler(self) -> dict[str, Any]:
        """Scale the stable track (or the Rollout) on CPU utilisation."""
        target = (
            {"apiVersion": ARGO_API, "kind": "Rollout", "name": self.app_name}
            if self.argo
            else {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.app_name}
        )
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": self._meta(self.app_name),
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": self.replicas,
                "maxReplicas": self.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
        }

    def disruption_budget(self) -> dict[str, Any]:
        """Voluntary evictions keep at least one server of the model up."""
        return {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self._meta(self.app_name),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": self._selector()}},
        }
