"""The chaos runner, above the kernel: real processes and broker nodes killed, paused and cut off
while traffic flows (:mod:`~scorestream.chaos.runner`, :mod:`~scorestream.chaos.faults`,
:mod:`~scorestream.chaos.traffic`), and the check that nothing was lost, duplicated or reordered
(:mod:`~scorestream.chaos.check`)."""
