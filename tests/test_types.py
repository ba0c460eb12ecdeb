import io

import pytest
from PIL import Image

from workbench import ImageData, InputError, Prompt
from workbench.types import MAX_IMAGE_SIDE


def png_bytes(size=(40, 30), color=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_prompt_needs_text_or_image():
    with pytest.raises(InputError, match="empty"):
        Prompt("   ")
    assert Prompt("", images=[png_bytes()]).images[0].width == 40


def test_image_from_path_is_hashed_and_same_content_same_hash(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(png_bytes())
    a, b = ImageData.load(p), ImageData.load(png_bytes())
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    assert a.data_url().startswith("data:image/png;base64,")


@pytest.mark.parametrize("content", [b"not an image at all", png_bytes()[:60], b""])
def test_corrupt_or_non_image_files_are_clear_errors(tmp_path, content):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(InputError, match="not a readable image"):
        Prompt("x", images=[p])


def test_missing_image_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Prompt("x", images=[tmp_path / "nope.jpg"])


def test_large_image_is_downscaled_and_giant_refused():
    img = ImageData.load(Image.new("RGB", (5000, 1000)))
    assert max(img.width, img.height) == MAX_IMAGE_SIDE
    with pytest.raises(InputError, match="over the limit of 40,000,000 pixels"):
        ImageData.load(png_bytes((8000, 6000)))


def test_messages_carry_persona_and_images():
    msgs = Prompt("What colour?", images=[png_bytes()], system="Be brief.").messages("You are a skeptic.")
    assert msgs[0].role == "system" and "skeptic" in msgs[0].text and "Be brief." in msgs[0].text
    assert len(msgs[1].images) == 1 and msgs[1].text == "What colour?"
