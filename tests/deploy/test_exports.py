"""Pin the public names of readyml.deploy."""

from __future__ import annotations

import readyml.deploy


def test_all_is_sorted_and_importable() -> None:
    names = readyml.deploy.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    assert names == [
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
    for name in names:
        assert hasattr(readyml.deploy, name)
