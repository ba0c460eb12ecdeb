"""GPU-only checks (marker `gpu`): they run where CUDA is available; `make gpu-check` (benchmarks/gpu_check.py) does the rest."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


async def test_tiny_int4_on_the_gpu():
    import workbench as wb

    model = wb.load_model("tiny-offline-int4")
    assert model.hf_model.device.type == "cuda"
    assert set(model.memory_report()["by_component"]["experts"]) == {"nf4"}
    r = await model.generate("hello", max_new_tokens=8)
    assert r.ok and r.usage.completion_tokens > 0
