"""The Kubernetes manifests of every tenant, generated from the topic registry and the settings
classes (``scorestream k8s generate``, :mod:`~scorestream.deploy.k8s.generate`): Strimzi topics and
users, Deployments, KEDA and HPA scaling, network policies, monitoring, the Istio and ingress
edges and the Kubeflow pipeline."""
