"""The Gradio workbench: ``build_demo()`` composes the page; ``launch()`` serves it until told to stop.

Tabs: Fuse (``fuse_tab``), Evaluate (``evaluate_tab``), History (``history_tab``); the ``/fuse`` API
(``api``). Pool editing is ``pool``; events become view updates in ``stream``; HTML and Markdown come
from ``workbench.render``. Every module here renders the engine's events and records only.
"""

from __future__ import annotations

import os
import sys

import gradio as gr

from ..context import VISITOR_COOKIE
from ..errors import ConfigError
from ..policy import Policy
from ..render.html import NOISE_NOTICE, NOISE_NOTICE_VISITOR
from ..specs import load_registry
from ..storage import RunStore
from .api import add_fuse_api
from .evaluate_tab import EvaluateTab
from .fuse_tab import FuseTab
from .history_tab import HistoryTab
from .label_tab import LabelTab
from .pool import default_pool
from .startup import Preloader, choose_preset, visitor_notice
from .tab import Page, Tab

CSS = """
.wb-members { overflow-x: auto; flex-wrap: nowrap !important; }
.wb-strip { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.wb-strip-label { font-size: 0.8em; opacity: 0.7; }
.wb-thumbs { display: flex; gap: 6px; }
.wb-thumb { margin: 0; text-align: center; }
.wb-thumb img { max-width: 96px; max-height: 96px; border: 1px solid var(--border-color-primary); border-radius: 4px; }
.wb-thumb figcaption { font-size: 0.7em; opacity: 0.7; }
.wb-offscreen { position: absolute !important; left: -10000px !important; width: 1px !important; overflow: hidden; }
.wb-label-prompt .wb-thumb img { max-width: 160px; max-height: 160px; }
.wb-prompt-echo { white-space: pre-wrap; max-height: 4.5em; overflow: auto; flex: 1; font-size: 0.9em; }
.wb-compare { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.wb-compare-col { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px; min-width: 0; }
.wb-blind-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 10px; }
.wb-blind { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
.wb-fused { border-color: #4c78a8; border-width: 2px; }
.wb-member { min-width: 280px; max-width: 420px; border: 1px solid var(--border-color-primary);
             border-radius: 8px; padding: 6px; }
.wb-pre { white-space: pre-wrap; word-break: break-word; font-family: var(--font-mono); font-size: 0.85em; }
.wb-notice { border-left: 4px solid #f58518; padding-left: 8px; }
"""

#: on the page's load: a random visitor token (128 bits from the browser's CSPRNG), kept in a first-party cookie
#: (partitioned when the page is embedded over https, as on a Space) and sent with every request of the page
VISITOR_JS = """
() => {
  const name = '{name}';
  if (document.cookie.split('; ').some(c => c.startsWith(name + '=') && c.length > name.length + 22)) return;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const token = Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
  const attrs = location.protocol === 'https:' ? '; SameSite=None; Secure; Partitioned' : '; SameSite=Lax';
  document.cookie = name + '=' + token + '; Path=/; Max-Age=31536000' + attrs;
}
""".replace("{name}", VISITOR_COOKIE)


def build_demo(preset: str | None = None, store: RunStore | None = None, preload: bool = True,
               pool: list[str] | None = None, policy: Policy | None = None,
               api_key_env: str | None = None) -> gr.Blocks:
    """The workbench app.

    Args:
        preset: model to start on ("auto": Scout INT4 when a GPU and its weights are there, else tiny-offline).
        store: where runs are kept (default: the user data directory).
        preload: load the start-up preset in the background so the first prompt does not wait.
        pool: the starting pool as member names (default: the preset three times, with personas).
        policy: what visitors may name, reach and spend (default: ``Policy.for_host()``, public on Spaces).
        api_key_env: the variable holding the key programmatic clients must send to the ``/fuse`` and
            ``/evaluate`` endpoints (as to ``/v1``); the page's own events never ask for it. None: no key.
    """
    from ..serve.auth import api_token

    policy = policy or Policy.for_host()
    token = api_token(api_key_env)  # a named but unset variable: ConfigError, never an open server
    preset, notice = choose_preset(preset)
    if policy.public:  # the visitor reads what they can do; the host's notice (with its commands) goes to the log
        if notice:
            print(f"workbench: {notice}", file=sys.stderr, flush=True)
        notice = visitor_notice(preset, notice, policy.allow_custom_endpoints)
    store = store or RunStore()
    reg0 = load_registry()
    page = Page(store, policy, preset, sorted(reg0.models), [""] + sorted(reg0.personas), token,
                Preloader(preset) if preload else None)
    is_noise = reg0.models.get(preset) is not None and reg0.models[preset].is_noise
    start_pool = [[m, "", "", ""] for m in pool] if pool else default_pool(preset)

    with gr.Blocks(title="Fusion Workbench") as demo:
        gr.Markdown("# Fusion Workbench\nDoes a fused pool of models beat the best single one, and why?")
        gr.Markdown(("⚠ " + notice) if notice else "", elem_classes="wb-notice", visible=bool(notice),
                    elem_id="start-notice")
        noise_md = gr.Markdown(NOISE_NOTICE_VISITOR if policy.public else NOISE_NOTICE, elem_id="noise-notice", elem_classes="wb-notice", visible=is_noise)
        fuse = FuseTab(page, start_pool, noise_md).build()
        tabs: list[Tab] = [fuse, EvaluateTab(page, fuse).build(), HistoryTab(page, fuse).build(),
                           LabelTab(page).build()]
        add_fuse_api(store, policy, token)

        def restore(state, request: gr.Request | None = None):
            """A page opens: every tab fills what it shows from the browser's saved state and the store."""
            return tuple(value for tab in tabs for value in tab.on_load(state or {}, request))

        demo.load(restore, fuse.saved, [c for tab in tabs for c in tab.loads], api_visibility="private")
        for js in dict.fromkeys(tab.load_js for tab in tabs if tab.load_js):
            demo.load(None, None, None, js=js)
        if policy.public:  # a visitor keeps their runs across reloads
            demo.load(None, None, None, js=VISITOR_JS)

    demo.queue(default_concurrency_limit=16, max_size=policy.limits.queue_size)
    demo.policy, demo.store, demo.preloader, demo.tabs = policy, store, page.preloader, tabs
    return demo


def start(preset: str | None = None, host: str = "127.0.0.1", port: int | None = None,
          pool: list[str] | None = None, public: bool | None = None, api_key_env: str | None = None,
          **kw) -> gr.Blocks:
    """Build the app and start serving it (the page, and the OpenAI-compatible API at ``/v1``); returns at once.

    ``public=True`` (or ``share=True``, a Space, or a bind address other than loopback) puts the app in public
    mode; ``public=False`` keeps local mode on any address (a trusted lab network). See ``workbench.policy``.
    The API (``workbench.serve``) runs under the same policy and run store as the page; ``api_key_env`` names
    the variable holding the bearer token it requires (None: none)."""
    import sys

    from ..serve import mount_routes

    policy = Policy.for_host(True if (public or kw.get("share")) else public, bind_host=host)
    port = choose_port(host, port)  # before anything loads: a busy port is one line, not a traceback
    print(policy.describe(), file=sys.stderr, flush=True)
    store = kw.pop("store", None) or RunStore()
    demo = build_demo(preset, pool=pool, policy=policy, store=store, preload=kw.pop("preload", True),
                      api_key_env=api_key_env)
    routes = mount_routes(policy, store, api_key_env)
    kw.setdefault("quiet", True)  # Gradio's own lines name launch() arguments; ours name the flags
    if policy.public:  # uploads over the image limit are refused by Gradio before they are written
        kw.setdefault("max_file_size", policy.limits.max_image_bytes)
    try:
        demo.launch(server_name=host, server_port=port, css=CSS, prevent_thread_lock=True,
                    app_kwargs={"routes": routes}, **kw)
    except OSError as exc:  # taken between the check and the bind
        demo.close()
        raise ConfigError(busy_message(host, port)) from exc
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    print(f"Fusion Workbench on {url}  (OpenAI-compatible API at {url}/v1; runs stored in {store.path})",
          file=sys.stderr, flush=True)
    if getattr(demo, "share_url", None):
        print(f"Public link: {demo.share_url}", file=sys.stderr, flush=True)
    elif not kw.get("share"):
        print("A public gradio.live link: add --share (make demo ARGS=--share); Ctrl-C stops.", file=sys.stderr,
              flush=True)
    return demo


DEFAULT_PORT = 7860


def busy_message(host: str, port: int) -> str:
    """One line: the port is taken, and the flag that picks a free one."""
    from ..serve.cli import port_free

    nxt = next((p for p in range(port + 1, port + 100) if port_free(host, p)), None)
    hint = f"; {nxt} is free: workbench demo --port {nxt} (make demo ARGS=\"--port {nxt}\")" if nxt else ""
    return f"port {port} on {host} is in use (another workbench or server?){hint}"


def choose_port(host: str, port: int | None) -> int:
    """The port to serve on: the one asked for (ConfigError with the next free one when it is taken), else
    $GRADIO_SERVER_PORT or 7860, moving to the next free one when that is taken (said on stderr)."""
    import sys

    from ..serve.cli import port_free

    if port is not None:
        if not port_free(host, port):
            raise ConfigError(busy_message(host, port))
        return port
    first = int(os.environ.get("GRADIO_SERVER_PORT") or DEFAULT_PORT)
    for p in range(first, first + 100):
        if port_free(host, p):
            if p != first:
                print(f"port {first} is in use; serving on {p} instead (--port N to choose)", file=sys.stderr,
                      flush=True)
            return p
    raise ConfigError(f"no free port in {first}-{first + 99} on {host}: choose one with --port N")


def launch(preset: str | None = None, host: str = "127.0.0.1", port: int | None = None,
           pool: list[str] | None = None, grace_s: float = 25.0, stop=None, public: bool | None = None,
           api_key_env: str | None = None, **kw) -> None:
    """``start`` the app, then serve it until SIGTERM or Ctrl-C and drain (see ``serving.serve_until_signal``)."""
    from ..serving import StopSignals, serve_until_signal

    stop = stop or StopSignals()
    demo = start(preset, host, port, pool, public, api_key_env, **kw)
    serve_until_signal(demo, grace_s, stop)
