"""Training pipelines (Kubeflow Pipelines), ONNX export and the model repository."""
