"""A docker-compose stack for one project: server, PostgreSQL, S3-compatible store, monitoring.

:class:`ComposeStack` writes ``docker-compose.yml`` (Compose Specification) with the server
image built from a ``readyml build --no-bake`` context, PostgreSQL as the metadata store,
MinIO as the artifact store, Prometheus scraping the server's ``/metrics`` and loading
readyml's alert rules, and Alertmanager receiving them. Every service has a health check and
its data in a named volume; the server starts once the stores are healthy. Passwords come
from the environment (``${VAR:?}`` fails fast when one is unset): none is written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from readyml.deploy.container import DEFAULT_PORT, check_out
from readyml.errors import ConfigError
from readyml.types import ModelRef

POSTGRES_IMAGE = "postgres:16-bookworm"
MINIO_IMAGE = "minio/minio:RELEASE.2024-10-13T13-34-11Z"
PROMETHEUS_IMAGE = "prom/prometheus:v2.55.1"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.27.0"
BUCKET = "readyml"
SCRAPE_INTERVAL = "15s"


class ComposeStack:
    """Render the compose file and the Prometheus/Alertmanager configuration beside it.

    Example:
        >>> stack = ComposeStack(project="iris", model="iris@champion", build_context="build")
        >>> sorted(stack.compose()["services"])
        ['alertmanager', 'minio', 'postgres', 'prometheus', 'server']
    """

    def __init__(
        self,
        *,
        project: str,
        model: str,
        build_context: str = "build",
        image: str | None = None,
        port: int = DEFAULT_PORT,
    ) -> None:
        self.project = project
        self.model = model
        self.build_context = build_context
        self.image = image
        self.port = port

    def _check(self) -> None:
        try:
            ModelRef.parse(self.model)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not 0 < self.port < 65536:
            raise ConfigError(f"port: expected 1 to 65535, found {self.port}")
        if not self.build_context.strip():
            raise ConfigError("--build-context: expected a folder relative to --out, found ''")

    def compose(self) -> dict[str, Any]:
        """The compose document."""
        server: dict[str, Any] = {
            "build": {"context": self.build_context},
            "image": self.image or f"readyml-{self.project.lower()}:latest",
            "ports": [f"{self.port}:{self.port}"],
            "environment": {
                "READYML_MODEL": self.model,
                "READYML_STORE_URL": (
                    "postgresql+psycopg://readyml:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
                    "@postgres:5432/readyml"
                ),
                "READYML_ARTIFACTS_URL": f"s3://{BUCKET}/artifacts",
                "READYML_S3_ENDPOINT_URL": "http://minio:9000",
                "AWS_ACCESS_KEY_ID": "readyml",
                "AWS_SECRET_ACCESS_KEY": "${MINIO_PASSWORD:?set MINIO_PASSWORD}",
                "READYML_SERVE_TOKEN": "${READYML_SERVE_TOKEN:?set READYML_SERVE_TOKEN}",
            },
            "depends_on": {
                "postgres": {"condition": "service_healthy"},
                "minio": {"condition": "service_healthy"},
            },
            "healthcheck": {
                "test": [
                    "CMD",
                    "python",
                    "-c",
                    "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen("
                    f"'http://127.0.0.1:{self.port}/v2/health/ready', timeout=4).status == 200 "
                    "else 1)",
                ],
                "interval": "15s",
                "timeout": "5s",
                "retries": 3,
                "start_period": "60s",
            },
            "restart": "unless-stopped",
        }
        return {
            "name": f"readyml-{self.project.lower()}",
            "services": {
                "server": server,
                "postgres": {
                    "image": POSTGRES_IMAGE,
                    "environment": {
                        "POSTGRES_USER": "readyml",
                        "POSTGRES_DB": "readyml",
                        "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}",
                    },
                    "volumes": ["postgres-data:/var/lib/postgresql/data"],
                    "healthcheck": {
                        "test": ["CMD", "pg_isready", "-U", "readyml", "-d", "readyml"],
                        "interval": "10s",
                        "timeout": "5s",
                        "retries": 5,
                    },
                    "restart": "unless-stopped",
                },
                "minio": {
                    "image": MINIO_IMAGE,
                    "command": ["server", "/data", "--console-address", ":9001"],
                    "environment": {
                        "MINIO_ROOT_USER": "readyml",
                        "MINIO_ROOT_PASSWORD": "${MINIO_PASSWORD:?set MINIO_PASSWORD}",
                    },
                    "volumes": ["minio-data:/data"],
                    "healthcheck": {
                        "test": ["CMD", "mc", "ready", "local"],
                        "interval": "10s",
                        "timeout": "5s",
                        "retries": 5,
                    },
                    "restart": "unless-stopped",
                },
                "prometheus": {
                    "image": PROMETHEUS_IMAGE,
                    "command": [
                        "--config.file=/etc/prometheus/prometheus.yml",
                        "--storage.tsdb.path=/prometheus",
                    ],
                    "ports": ["9090:9090"],
                    "volumes": [
                        "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                        "./prometheus/alert_rules.yml:/etc/prometheus/alert_rules.yml:ro",
                        "prometheus-data:/prometheus",
                    ],
                    "depends_on": {"alertmanager": {"condition": "service_healthy"}},
                    "healthcheck": {
                        "test": ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1:9090/-/ready"],
                        "interval": "15s",
                        "timeout": "5s",
                        "retries": 3,
                    },
                    "restart": "unless-stopped",
                },
                "alertmanager": {
                    "image": ALERTMANAGER_IMAGE,
                    "command": [
                        "--config.file=/etc/alertmanager/alertmanager.yml",
                        "--storage.path=/alertmanager",
                        "--cluster.listen-address=",
                    ],
                    "ports": ["9093:9093"],
                    "volumes": [
                        "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro",
                        "alertmanager-data:/alertmanager",
                    ],
                    "healthcheck": {
                        "test": ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1:9093/-/ready"],
                        "interval": "15s",
                        "timeout": "5s",
                        "retries": 3,
                    },
                    "restart": "unless-stopped",
                },
            },
            "volumes": {
                "postgres-data": {},
                "minio-data": {},
                "prometheus-data": {},
                "alertmanager-data": {},
            },
        }

    def prometheus_config(self) -> dict[str, Any]:
        """Prometheus: scrape the server, load the rules, alert through Alertmanager."""
        return {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": ["/etc/prometheus/alert_rules.yml"],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
            },
            "scrape_configs": [
                {
                    "job_name": "readyml",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [f"server:{self.port}"]}],
                }
            ],
        }

    def alertmanager_config(self) -> dict[str, Any]:
        """Alertmanager: group by alert and model; one receiver to fill in."""
        return {
            "route": {
                "receiver": "readyml",
                "group_by": ["alertname", "model"],
                "group_wait": "30s",
                "repeat_interval": "4h",
            },
            "receivers": [{"name": "readyml"}],
        }

    def write(self, out: Path, *, alert_rules: Mapping[str, Any]) -> list[Path]:
        """Write ``docker-compose.yml``, ``prometheus/`` and ``alertmanager/`` into ``out``.

        Args:
            out: The folder (created; must be empty or absent).
            alert_rules: The Prometheus rules document
                (:func:`readyml.monitor.prometheus.alert_rules`).

        Raises:
            ConfigError: ``out`` has files in it or is a file, or a parameter is invalid.
        """
        self._check()
        check_out(out)
        files = {
            out / "docker-compose.yml": self.compose(),
            out / "prometheus" / "prometheus.yml": self.prometheus_config(),
            out / "prometheus" / "alert_rules.yml": dict(alert_rules),
            out / "alertmanager" / "alertmanager.yml": self.alertmanager_config(),
        }
        for path, document in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return list(files)
