"""Producers: the gateway, the traffic simulator, the label feed and the publisher library."""
