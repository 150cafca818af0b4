"""Deployment: container build contexts, Kubernetes manifests, compose stacks, CI templates.

Each generator writes plain files from a registered version and the project spec:
:class:`ContainerBuild` (multi-stage Dockerfile pinned to the training environment, SBOM,
baked or pulled model), :class:`KubernetesManifests` (Deployment or canary pair or Argo
Rollout, Service, autoscaler, disruption budget, config), :class:`ComposeStack` (server,
PostgreSQL, MinIO, Prometheus, Alertmanager) and :func:`github_workflow`. Scale-out runners
(Ray) are not here yet.
"""

from __future__ import annotations

from readyml.deploy.ci import WORKFLOW_PATH, github_workflow
from readyml.deploy.compose import ComposeStack
from readyml.deploy.container import BuildResult, ContainerBuild, build_image, image_name
from readyml.deploy.kubernetes import KubernetesManifests, Manifest

__all__ = [
    "WORKFLOW_PATH",
    "BuildResult",
    "ComposeStack",
    "ContainerBuild",
    "KubernetesManifests",
    "Manifest",
    "build_image",
    "github_workflow",
    "image_name",
]
