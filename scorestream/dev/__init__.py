"""The local development stack, above the kernel: the genuine Kafka broker assembled from Maven
Central (:mod:`~scorestream.dev.broker`), an S3 server, the process supervisor behind
``scorestream up`` / ``down``, the demos (``scorestream demo``, ``roundtrip``) and the docs and
dependency checks. Never imported by the kernel or a service."""
