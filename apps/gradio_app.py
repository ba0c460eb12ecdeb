"""Entry point for Hugging Face Spaces (README front matter: app_file) and `python apps/gradio_app.py`.

All the app's code lives in workbench.ui.gradio_app; `workbench demo` launches the same thing.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a Space runs from the repo without installing

from workbench.ui.gradio_app import CSS, build_demo  # noqa: E402
from workbench.ui.serving import StopSignals, serve_until_signal  # noqa: E402

# Spaces runs this file and restarts the container with SIGTERM: catch it from the start, drain, exit 0.
stop = StopSignals() if __name__ == "__main__" else None
demo = build_demo(os.environ.get("WORKBENCH_PRESET", "auto"))

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), css=CSS, prevent_thread_lock=True)
    serve_until_signal(demo, float(os.environ.get("WORKBENCH_GRACE_S", 25)), stop)
