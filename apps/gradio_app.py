"""Entry point for Hugging Face Spaces (README front matter: app_file) and `python apps/gradio_app.py`.

All the app's code lives in workbench.ui.gradio_app; `workbench demo` launches the same thing.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a Space runs from the repo without installing

from workbench.policy import Policy  # noqa: E402
from workbench.serve import mount_routes  # noqa: E402
from workbench.serving import StopSignals, serve_until_signal  # noqa: E402
from workbench.ui.gradio_app import CSS, build_demo  # noqa: E402

# Spaces runs this file and restarts the container with SIGTERM: catch it from the start, drain, exit 0.
stop = StopSignals() if __name__ == "__main__" else None
server_name = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
policy = Policy.for_host(bind_host=server_name)  # public unless it serves loopback only (or WORKBENCH_PUBLIC=0)
print(policy.describe(), file=sys.stderr, flush=True)
# a WORKBENCH_API_KEY secret makes every programmatic route (/v1, and the page's /fuse and /evaluate API endpoints)
# require that token; the page itself never asks for it
key_env = "WORKBENCH_API_KEY" if os.environ.get("WORKBENCH_API_KEY", "").strip() else None
demo = build_demo(os.environ.get("WORKBENCH_PRESET", "auto"), policy=policy, api_key_env=key_env)

if __name__ == "__main__":
    # the OpenAI-compatible API at /v1, under the same policy and key
    routes = mount_routes(policy, demo.store, key_env)
    kw = {"max_file_size": policy.limits.max_image_bytes} if policy.public else {}
    demo.launch(server_name=server_name, css=CSS, prevent_thread_lock=True, app_kwargs={"routes": routes}, **kw)
    serve_until_signal(demo, float(os.environ.get("WORKBENCH_GRACE_S", 25)), stop)
