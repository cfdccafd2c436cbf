"""Deployment, above the kernel: the Kubernetes manifests (:mod:`~scorestream.deploy.k8s`), the
least-privilege ACL model (:mod:`~scorestream.deploy.acl`) and its application to a broker as
SCRAM principals (:mod:`~scorestream.deploy.principals`), and the image's lock file
(:mod:`~scorestream.deploy.lockfile`)."""
