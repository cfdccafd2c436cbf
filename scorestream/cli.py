"""The ``scorestream`` command line. Subcommands grow with the services."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from scorestream import __version__
from scorestream.errors import ScorestreamError


def _progress(message: str) -> None:
    print(message, flush=True)


def _cmd_broker(args: argparse.Namespace) -> int:
    from scorestream.broker import LocalBroker  # noqa: PLC0415  (keep `--help` fast)

    broker = LocalBroker()
    if args.action == "start":
        t0 = time.monotonic()
        state = broker.start(clean=args.clean, progress=_progress)
        print(f"bootstrap: {state.bootstrap}  (took {time.monotonic() - t0:.1f}s)")
        return 0
    if args.action == "stop":
        broker.stop(progress=_progress)
        if args.clean:
            import shutil  # noqa: PLC0415

            for sub in ("data", "logs", "config"):
                shutil.rmtree(broker.home / sub, ignore_errors=True)
            (broker.home / "ports.json").unlink(missing_ok=True)
            print(f"wiped broker data in {broker.home}")
        return 0
    if args.action == "status":
        status = broker.status()
        print(status.describe())
        return 0 if status.running else 3
    if args.action == "logs":
        print(broker.logs(args.lines))
        return 0
    raise AssertionError(args.action)


def _cmd_kafka(args: argparse.Namespace) -> int:
    from scorestream.broker.tools import run_tool  # noqa: PLC0415
    from scorestream.kafka_config import resolve_bootstrap  # noqa: PLC0415
    from scorestream.settings import KafkaSettings  # noqa: PLC0415

    return run_tool(args.tool, args.args, bootstrap=resolve_bootstrap(KafkaSettings()))


def _cmd_topics(args: argparse.Namespace) -> int:
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415
    from scorestream.topics import REGISTRY  # noqa: PLC0415

    if args.action == "create":
        for result in ensure_tenant_topics(args.tenant):
            detail = f" ({result.detail})" if result.detail else ""
            print(f"{result.action.value:9} {result.topic} [{result.partitions}]{detail}")
        return 0
    if args.action == "list":
        for spec in REGISTRY.streams:
            name = spec.topic(args.tenant) if args.tenant else spec.name
            retention = (
                "forever" if spec.retention_ms < 0 else f"{spec.retention_ms // 86_400_000}d"
            )
            print(
                f"{name:40} partitions={spec.partitions:<2} {spec.cleanup_policy.value:7} "
                f"retention={retention:8} writers={','.join(spec.producers) or '-'} "
                f"readers={','.join(spec.consumers) or '-'}"
            )
        return 0
    raise AssertionError(args.action)


def _cmd_k8s(args: argparse.Namespace) -> int:
    from scorestream.k8s import generate  # noqa: PLC0415
    from scorestream.k8s_manifests import generate_all  # noqa: PLC0415

    if args.action == "generate":
        tenants = args.tenant or ["demo"]
        if args.out:  # only the Strimzi topics and users
            paths = generate(args.out, tenants=tenants, namespace=args.namespace)
        else:
            from scorestream.k8s_edge import INSTALLS  # noqa: PLC0415

            paths = generate_all(
                args.root, tenants=tenants, istio_ingress=INSTALLS[args.istio_ingress]
            )
        for path in paths:
            print(path)
        return 0
    raise AssertionError(args.action)


def _cmd_schemas(args: argparse.Namespace) -> int:
    from schemas import compat  # noqa: PLC0415

    if args.action == "generate":
        for path in compat.generate_all():
            print(f"wrote {path}")
        return 0
    if args.action == "publish":
        written = compat.publish_missing()
        for path in written:
            print(f"published {path}")
        if not written:
            print("every contract version is already published")
        return 0
    if args.action == "check":
        stale = compat.stale_files()
        problems = compat.check_published()
        for name in stale:
            print(f"stale: schemas/json/{name} (run 'scorestream schemas generate')")
        for ce_type, found in problems.items():
            for problem in found:
                print(f"breaking change in {ce_type}: {problem}")
        return 1 if stale or problems else 0
    raise AssertionError(args.action)


SERVICES: dict[str, tuple[str, str]] = {
    "enricher": ("consumers.enricher", "serve features: transactions → enriched (one hop)"),
    "merchant": (
        "consumers.merchant",
        "merchant stage: transactions + fraud labels → the merchant table every enricher reads",
    ),
    "worker": ("inference_worker.worker", "run an inference worker for a tenant"),
    "gateway": ("producers.gateway", "HTTP gateway: /v1 transactions, sync scoring, KServe V2"),
    "decision": (
        "consumers.decision",
        "decide approve / review / decline for a tenant's predictions",
    ),
    "notifier": ("consumers.notifier", "alerts and webhooks for review / decline decisions"),
    "audit": (
        "consumers.audit",
        "join transaction + prediction + decision into audit records; 'audit replay ...'",
    ),
    "monitor": (
        "consumers.monitor",
        "live precision/recall/AP and score drift (PSI) per model version, for a tenant",
    ),
}
"""Long-running services: ``scorestream <name> [flags]`` calls ``<module>.main(flags)``; settings
come from ``SCORESTREAM_<NAME>_*`` / ``SCORESTREAM_KAFKA_*`` env, flags override."""


def _run_service(name: str, argv: list[str]) -> int:
    import importlib  # noqa: PLC0415

    module = importlib.import_module(SERVICES[name][0])
    code: int = module.main(argv)
    return code


def _cmd_gateway_keys(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from producers.gateway.auth import add_key  # noqa: PLC0415

    key, line = add_key(args.tenant, Path(args.file) if args.file else None)
    print(f"API key (shown once; give it to the client): {key}")
    print(f"stored line{f' (appended to {args.file})' if args.file else ''}: {line}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from scorestream.up import describe, up, wait_ready  # noqa: PLC0415

    supervisor = up(args.tenant, gateway_port=args.gateway_port, progress=_progress)
    statuses = wait_ready(supervisor, timeout=args.ready_timeout, progress=_progress)
    print(f"all {len(statuses)} services of tenant {args.tenant} are ready:")
    print(describe(statuses))
    print(
        f"gateway: http://127.0.0.1:{args.gateway_port}/docs   logs: {supervisor.dir}/\n"
        f"API key: {supervisor.dir}/api-key (send it as 'Authorization: Bearer <key>')\n"
        f"stop with: scorestream down --tenant {args.tenant}"
    )
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from scorestream.up import down  # noqa: PLC0415

    stopped = down(args.tenant, progress=_progress)
    print(f"stopped {stopped} service(s) of tenant {args.tenant}")
    return 0


def _cmd_state(args: argparse.Namespace) -> int:
    from scorestream.ops.rescale import rescale, store_ref  # noqa: PLC0415

    report = rescale(store_ref(args.store, args.tenant), dry_run=args.dry_run, progress=_progress)
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{args.store} state of {args.tenant}: {report.keys} keys, {verb} {report.moved}; "
        f"changelog {report.changelog_partitions_before} → {report.source_partitions} partitions"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from scorestream.live_demo import run_live_demo  # noqa: PLC0415

    return run_live_demo(
        duration=args.duration,
        rate=args.rate,
        sync_rate=args.sync_rate,
        keep_running=args.keep_running,
        seed=args.seed,
    )


def _cmd_roundtrip(args: argparse.Namespace) -> int:
    from scorestream.demo import run_demo  # noqa: PLC0415

    return run_demo(tenant=args.tenant, count=args.count, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915  (a block per subcommand)
    parser = argparse.ArgumentParser(
        prog="scorestream",
        description="Real-time transactional model inference over Apache Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"scorestream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = sub.add_parser("broker", help="the local Apache Kafka broker (KRaft, from Maven jars)")
    broker.add_argument(
        "action", choices=("start", "stop", "status", "logs"), help="what to do with the broker"
    )
    broker.add_argument("--clean", action="store_true", help="wipe the broker's data")
    broker.add_argument("-n", "--lines", type=int, default=50, help="log lines to show")
    broker.set_defaults(func=_cmd_broker)

    kafka = sub.add_parser(
        "kafka",
        help="run a genuine Kafka CLI tool (kafka-topics, kafka-console-consumer, ...)",
        description="Runs Kafka's own tools from the local jars; --bootstrap-server is filled in"
        " from KAFKA_BOOTSTRAP_SERVERS or the local broker when not given.",
    )
    kafka.add_argument("tool", help="e.g. kafka-topics, kafka-console-consumer, kafka-acls")
    kafka.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the tool")
    kafka.set_defaults(func=_cmd_kafka)

    topics = sub.add_parser("topics", help="the topic registry")
    topics.add_argument(
        "action", choices=("create", "list"), help="create a tenant's topics, or list the registry"
    )
    topics.add_argument("--tenant", help="tenant id (required for create)")
    topics.set_defaults(func=_cmd_topics)

    k8s = sub.add_parser("k8s", help="Kubernetes manifests generated from the topic registry")
    k8s.add_argument("action", choices=("generate",), help="(re)generate the manifests")
    k8s.add_argument("--root", default="k8s", help="the k8s/ tree to (re)generate")
    k8s.add_argument("--out", help="write only the Strimzi topics and users to this directory")
    k8s.add_argument("--tenant", action="append", help="tenant id, repeatable (default: demo)")
    k8s.add_argument("--namespace", default="kafka", help="namespace of the Strimzi resources")
    k8s.add_argument(
        "--istio-ingress",
        choices=("istioctl", "helm"),
        default="istioctl",
        help="the Istio ingress gateway the istio overlay selects and admits: istioctl's default "
        "profile (istio-system, istio=ingressgateway) or Istio's Helm gateway chart "
        "(istio-ingress, istio=ingress)",
    )
    k8s.set_defaults(func=_cmd_k8s)

    schemas = sub.add_parser("schemas", help="JSON Schemas of the event contracts")
    schemas.add_argument(
        "action",
        choices=("generate", "publish", "check"),
        help="write the JSON Schema files, publish them, or check compatibility",
    )
    schemas.set_defaults(func=_cmd_schemas)

    keys = sub.add_parser("gateway-keys", help="gateway API keys: 'add' prints a new key")
    keys.add_argument("action", choices=("add",), help="add a new key (printed once)")
    keys.add_argument("--tenant", required=True, help="tenant the key scores for")
    keys.add_argument("--file", help="append the stored (hashed) line to this keys file")
    keys.set_defaults(func=_cmd_gateway_keys)

    up_cmd = sub.add_parser(
        "up",
        help="start broker, topics and every service of a tenant; wait until they are ready",
        description="Starts each service as a process (logs and pids in "
        "$SCORESTREAM_HOME/run/<tenant>/), waits until every one answers /readyz, then prints "
        "each service's URL and port. A service that exits or is not ready in time fails the "
        "command with its /readyz answer and the last lines of its log.",
    )
    up_cmd.add_argument("--tenant", default="demo", help="tenant whose services to start")
    up_cmd.add_argument(
        "--gateway-port", type=int, default=8000, help="HTTP port of the gateway (API and probes)"
    )
    up_cmd.add_argument(
        "--ready-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for every service to be ready (default 120)",
    )
    up_cmd.set_defaults(func=_cmd_up)
    down_cmd = sub.add_parser("down", help="stop the services started by 'up'")
    down_cmd.add_argument("--tenant", default="demo", help="tenant whose services to stop")
    down_cmd.set_defaults(func=_cmd_down)

    state = sub.add_parser(
        "state",
        help="keyed state stores: 'rescale' after an input topic gained partitions",
        description="rescale: with every instance of the service stopped, grow the store's "
        "changelog to its input's partition count and move each key to its new partition "
        "(docs/operations.md, 'Adding partitions').",
    )
    state.add_argument("action", choices=("rescale",), help="what to do with the store")
    state.add_argument("--tenant", required=True, help="the tenant whose store to rescale")
    state.add_argument(
        "--store", required=True, choices=("enricher", "merchant"), help="the service's store"
    )
    state.add_argument(
        "--dry-run", action="store_true", help="count what would move, change nothing"
    )
    state.set_defaults(func=_cmd_state)

    demo = sub.add_parser("demo", help="the live demo: every service, traffic, hot swap, summary")
    demo.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    demo.add_argument("--rate", type=float, default=400.0, help="simulated events/s to Kafka")
    demo.add_argument("--sync-rate", type=float, default=10.0, help="gateway requests/s")
    demo.add_argument("--keep-running", action="store_true", help="leave the services up")
    demo.add_argument("--seed", type=int, default=None, help="simulator seed (default: random)")
    demo.set_defaults(func=_cmd_demo)

    roundtrip = sub.add_parser(
        "roundtrip", help="publish generated transactions and read them back as a table"
    )
    roundtrip.add_argument("--tenant", default="demo", help="tenant whose topics to use")
    roundtrip.add_argument(
        "--count", type=int, default=300, help="transactions to publish (default 300)"
    )
    roundtrip.add_argument("--seed", type=int, default=None, help="simulator seed")
    roundtrip.set_defaults(func=_cmd_roundtrip)

    from pipelines.cli import register as register_models  # noqa: PLC0415

    register_models(sub)

    from producers.simulate_cli import register as register_simulate  # noqa: PLC0415

    register_simulate(sub)

    from scorestream.chaos import register as register_chaos  # noqa: PLC0415

    register_chaos(sub)

    from scorestream.bench import register as register_bench  # noqa: PLC0415

    register_bench(sub)

    from scorestream.ops.dlq_cli import register as register_dlq  # noqa: PLC0415

    register_dlq(sub)

    for name, (_, help_text) in SERVICES.items():
        service = sub.add_parser(
            name,
            help=help_text,
            description=f"Settings come from SCORESTREAM_{name.upper()}_* and SCORESTREAM_KAFKA_*"
            f" env; flags override them (see 'scorestream {name} --help').",
        )
        service.add_argument(
            "args", nargs=argparse.REMAINDER, help=f"the service's own flags ({name} --help)"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SERVICES:
        # the service's own main parses its flags (argparse's REMAINDER cannot capture leading
        # --options after a subcommand)
        name, rest = argv[0], argv[1:]
        return _run(argparse.Namespace(func=lambda _: _run_service(name, rest)))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "topics" and args.action == "create" and not args.tenant:
        parser.error("topics create needs --tenant")
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.func(args)
    except ScorestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from pydantic import ValidationError  # noqa: PLC0415  (keep `--help` fast)

        if not isinstance(exc, ValidationError):
            raise
        from scorestream.settings import settings_error  # noqa: PLC0415

        # a service's settings: each failing one named, its value never quoted
        print(f"error: {settings_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
