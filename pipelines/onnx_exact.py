"""Make a converted LightGBM ONNX graph take exactly LightGBM's branches on float32 input.

LightGBM splits at double-precision thresholds ``x <= t`` (typically midpoints between two
float32 feature values). The ONNX tree ensemble stores float32 thresholds; onnxmltools rounds
``t`` to the *nearest* float32, which can equal the upper neighbour ``b`` — and then an input
``x == b`` goes left in ONNX but right in LightGBM, changing a leaf and the probability by ~1e-4.

For a float32 ``x``, ``x <= t`` holds exactly when ``x <= down(t)`` where ``down(t)`` is the
largest float32 not above ``t``. We walk both trees in parallel (ONNX true/false children vs
LightGBM left/right children), check that feature and rounded threshold agree at every split,
and store ``down(t)``. Any structural mismatch raises instead of guessing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper


class ThresholdPatchError(ValueError):
    """The ONNX trees do not line up with the LightGBM dump."""


def round_down_f32(value: float) -> float:
    f = np.float32(value)
    if float(f) > value:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _attr(node: onnx.NodeProto, name: str) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    raise ThresholdPatchError(f"{node.op_type} has no attribute {name}")


def patch_thresholds(model: onnx.ModelProto, dump: dict[str, Any]) -> int:
    """Rewrite the ensemble's thresholds in place; returns the number of splits patched."""
    ensembles = [n for n in model.graph.node if any(a.name == "nodes_values" for a in n.attribute)]
    if len(ensembles) != 1:
        raise ThresholdPatchError(f"expected one tree ensemble node, found {len(ensembles)}")
    node = ensembles[0]
    tree_ids = list(_attr(node, "nodes_treeids"))
    node_ids = list(_attr(node, "nodes_nodeids"))
    features = list(_attr(node, "nodes_featureids"))
    modes = [m.decode() if isinstance(m, bytes) else m for m in _attr(node, "nodes_modes")]
    values = list(_attr(node, "nodes_values"))
    true_ids = list(_attr(node, "nodes_truenodeids"))
    false_ids = list(_attr(node, "nodes_falsenodeids"))
    index = {(t, n): i for i, (t, n) in enumerate(zip(tree_ids, node_ids, strict=True))}
    trees = dump["tree_info"]
    patched = 0

    def walk(tree: int, onnx_node: int, lgb_node: dict[str, Any]) -> None:
        nonlocal patched
        i = index[(tree, onnx_node)]
        if "leaf_value" in lgb_node or "split_feature" not in lgb_node:
            if modes[i] != "LEAF":
                raise ThresholdPatchError(f"tree {tree}: ONNX branch where LightGBM has a leaf")
            return
        if modes[i] != "BRANCH_LEQ" or lgb_node.get("decision_type", "<=") != "<=":
            raise ThresholdPatchError(f"tree {tree}: unsupported split {modes[i]}")
        threshold = float(lgb_node["threshold"])
        if features[i] != lgb_node["split_feature"] or np.float32(threshold) != np.float32(
            values[i]
        ):
            raise ThresholdPatchError(f"tree {tree}: split {onnx_node} does not match LightGBM")
        values[i] = round_down_f32(threshold)
        patched += 1
        walk(tree, true_ids[i], lgb_node["left_child"])
        walk(tree, false_ids[i], lgb_node["right_child"])

    for t, info in enumerate(trees):
        roots = [n for (tt, n) in index if tt == t]
        if not roots:
            raise ThresholdPatchError(f"tree {t} is missing from the ONNX graph")
        walk(t, min(roots), info["tree_structure"])
    for a in node.attribute:
        if a.name == "nodes_values":
            del a.floats[:]
            a.floats.extend(values)
    return patched
