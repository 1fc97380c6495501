"""``kubectl herald``: arguments, the connection, and errors. See docs/kubectl-plugin.md."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from herald.reconciler import DEAD_LETTER_LABEL

from . import __version__, commands
from .kube import Api, CliError, Kube

DESCRIPTION = """\
Herald's Publications from kubectl: why they wait, their attempts' logs, redrive, retry now,
suspend and resume, and a preview of the text each platform would get.

Examples:
  kubectl herald status launch
  kubectl herald logs launch --target mastodon
  kubectl herald redrive --dead-letter
  kubectl herald retry-now launch --target mastodon
  kubectl herald preview -f publication.yaml --platform mastodon
"""


def _connection_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """kubectl's flags. On the subcommands their default is SUPPRESS, so a flag given before the
    command is not reset by the subcommand's parser (both ``herald -n x status`` and ``herald status -n x``)."""
    group = parser.add_argument_group("connection (as kubectl)")
    group.add_argument("--kubeconfig", default=default, help="path to the kubeconfig file (default: $KUBECONFIG)")
    group.add_argument("--context", default=default, help="the kubeconfig context to use")
    group.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's)")


def _selection_flags(parser: argparse.ArgumentParser, dead_letter: bool) -> None:
    parser.add_argument("names", nargs="*", metavar="PUB", help="publication names")
    parser.add_argument("-l", "--selector", help="label selector, e.g. app.kubernetes.io/part-of=blog")
    if dead_letter:
        parser.add_argument(
            "--dead-letter", action="store_true", help=f"every publication labelled {DEAD_LETTER_LABEL}=true"
        )
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="with -l or --dead-letter: look in every namespace"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl herald", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kubectl-herald {__version__}")
    _connection_flags(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _connection_flags(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, parents=[common])

    p = add("status", "per-target phase, attempts, reason, next attempt and post URL, with the conditions")
    p.add_argument("names", nargs="+", metavar="PUB")
    p.add_argument("-o", "--output", choices=["json", "yaml"], help="print the Publication object instead")

    p = add("redrive", "give dead-lettered targets a fresh retry budget (sets the herald.dev/redrive annotation)")
    _selection_flags(p, dead_letter=True)

    p = add("retry-now", "start a Retrying target's next attempt now (sets the herald.dev/retry-now annotation)")
    p.add_argument("name", metavar="PUB")
    p.add_argument("--target", action="append", default=[], metavar="ADAPTER", help="only this target (repeatable)")

    p = add("suspend", "start no new attempts (spec.suspend: true)")
    _selection_flags(p, dead_letter=False)
    p = add("resume", "start attempts again (spec.suspend: false)")
    _selection_flags(p, dead_letter=False)

    p = add("logs", "the attempt pod's log (default: the latest attempt of each target)")
    p.add_argument("name", metavar="PUB")
    p.add_argument("--target", metavar="ADAPTER", help="only this target")
    p.add_argument("--attempt", type=_positive, metavar="N", help="this attempt instead of the latest")
    p.add_argument("-f", "--follow", action="store_true", help="follow the log while the attempt runs")

    p = add("preview", "each target's text exactly as its adapter would send it (offline)")
    p.add_argument("name", nargs="?", metavar="PUB", help="a publication in the cluster (or in the -f file)")
    p.add_argument("--target", metavar="ADAPTER", help="only this target")
    p.add_argument("-f", "--filename", metavar="FILE", help="read the Publication from this YAML file ('-': stdin)")
    p.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="[ADAPTER=]PLATFORM",
        help="the platform of every target, or of one (repeatable); default: from the PlatformAdapters",
    )
    p.add_argument("-o", "--output", choices=["json", "yaml"], help="machine-readable output")
    return parser


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("attempts are numbered from 1")
    return n


def _selection(args: argparse.Namespace) -> commands.Selection:
    selectors = [args.selector] if args.selector else []
    if getattr(args, "dead_letter", False):
        selectors.append(f"{DEAD_LETTER_LABEL}=true")
    return commands.Selection(
        names=tuple(args.names), selector=",".join(selectors) or None, all_namespaces=args.all_namespaces
    )


def run(args: argparse.Namespace, connect: Callable[[], tuple[Api, str]], out: TextIO, err: TextIO) -> int:
    """Run the parsed command; ``connect`` gives the API and the namespace (called only when needed)."""
    if args.command == "preview" and args.filename:
        text = sys.stdin.read() if args.filename == "-" else _read(args.filename)
        return commands.preview(None, "", args.name, args.target, text, args.platform, args.output, out, err)
    api, namespace = connect()
    if args.command == "status":
        return commands.status(api, namespace, args.names, args.output, out)
    if args.command == "redrive":
        return commands.redrive(api, namespace, _selection(args), out, err)
    if args.command == "retry-now":
        return commands.retry_now(api, namespace, args.name, args.target, out)
    if args.command in ("suspend", "resume"):
        return commands.set_suspend(api, namespace, _selection(args), args.command == "suspend", out)
    if args.command == "logs":
        return commands.logs(api, namespace, args.name, args.target, args.attempt, args.follow, out, err)
    if args.command == "preview":
        return commands.preview(api, namespace, args.name, args.target, None, args.platform, args.output, out, err)
    raise CliError(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses it first


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0

    def connect() -> tuple[Api, str]:
        kube = Kube.connect(args.kubeconfig, args.context, args.namespace)
        return kube, kube.namespace

    try:
        return run(args, connect, sys.stdout, sys.stderr)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head
        return 0
