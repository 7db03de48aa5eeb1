"""The widgets, headless: every control changes the picture, the picture is what the plain
function gives, sliders survive their whole range, rapid changes end on the last one, and a
bad upload leaves a message and the previous picture."""

from __future__ import annotations

import dataclasses
import datetime
import io
import time

import numpy as np
import pytest
from PIL import Image

from vizwidgets.attribution import METHODS
from vizwidgets.models import Preprocess
from vizwidgets.synthesis import ClassLogit, fool, maximize
from vizwidgets.widgets import (
    ActivationBrowser,
    Display,
    Explorer,
    FoolingWidget,
    MaximisationWidget,
    StyleTransferWidget,
    explain_picture,
)


def decoded(image_widget) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_widget.value)).convert("RGB"))


@pytest.fixture(scope="module")
def explorer(lite):
    return Explorer(lite, ["chelsea", "coffee"])


def test_explorer_opens_on_grad_cam_of_the_first_image(explorer, lite) -> None:
    assert explorer.error.value == ""
    np.testing.assert_array_equal(explorer.view.rendered(), explain_picture(lite, "chelsea", "grad_cam"))
    assert "Egyptian cat" in explorer.bars.value
    assert explorer.layer.layout.display is None  # grad_cam needs a layer: the dropdown shows


def test_every_control_changes_the_picture_to_what_the_plain_function_gives(explorer, lite) -> None:
    def check(change, expected) -> None:
        before = explorer.view.rendered()
        change()
        now = explorer.view.rendered()
        assert explorer.error.value == ""
        assert not np.array_equal(before, now)
        np.testing.assert_array_equal(now, expected)

    check(lambda: setattr(explorer.method, "value", "gradient"), explain_picture(lite, "chelsea", "gradient"))
    assert explorer.layer.layout.display == "none"  # no layer for the gradient
    assert explorer.method.layout.display is None and explorer.image_select.layout.display is None
    check(lambda: setattr(explorer.method, "value", "grad_cam"), explain_picture(lite, "chelsea", "grad_cam"))
    check(
        lambda: setattr(explorer.layer, "value", "blocks.10"),
        explain_picture(lite, "chelsea", "grad_cam", layer="blocks.10"),
    )
    second = explorer.target.options[2][1]  # the second most probable class
    check(lambda: setattr(explorer.target, "value", second),
          explain_picture(lite, "chelsea", "grad_cam", layer="blocks.10", target=second))
    check(lambda: setattr(explorer.search, "value", "tabby"),
          explain_picture(lite, "chelsea", "grad_cam", layer="blocks.10", target=281))
    assert explorer.target.value == 281
    check(lambda: setattr(explorer.option_controls["upsample"], "value", False),
          explain_picture(lite, "chelsea", "grad_cam", layer="blocks.10", target=281, upsample=False))
    explorer.option_controls["upsample"].value = True
    misses = explorer.session.maps.misses
    display = Display(opacity=0.5)
    for control, value, field in [
        (explorer.opacity, 0.9, "opacity"), (explorer.cmap, "inferno", "cmap"),
        (explorer.scaling, "max", "scaling"), (explorer.sign, "all", "sign"),
    ]:
        display = dataclasses.replace(display, **{field: value})
        check(lambda c=control, v=value: setattr(c, "value", v),
              explain_picture(lite, "chelsea", "grad_cam", layer="blocks.10", target=281, display=display))
    assert explorer.session.maps.misses == misses  # display changes never call the model
    check(lambda: setattr(explorer.image_select, "value", "coffee"),
          explain_picture(lite, "coffee", "grad_cam", layer="blocks.10", target=281, display=display))
    explorer.compare.value = ("gradient", "cam")
    assert len(explorer.compare_box.children) == 2 and explorer.error.value == ""
    explorer.compare.value = ("gradient", "cam", "layer_cam", "xgrad_cam", "grad_cam")  # grad_cam is the main one
    assert len(explorer.compare_box.children) == 4  # three pictures and a note
    assert "first 3 of 4" in explorer.compare_box.children[-1].value
    explorer.compare.value = ()
    # back to the start for the other tests
    explorer.image_select.value = "chelsea"
    explorer.target.value = -1  # the predicted class
    explorer.layer.value = "head"
    for control, value in [
        (explorer.opacity, 0.5), (explorer.cmap, "jet"), (explorer.scaling, "percentile"), (explorer.sign, "absolute")
    ]:
        control.value = value


def test_fifty_rapid_changes_end_on_the_last(explorer, lite) -> None:
    methods = ["gradient", "cam", "grad_cam", "gradient_x_input", "layer_cam"]
    for i in range(50):
        explorer.method.value = methods[i % len(methods)]
        explorer.opacity.value = round(0.2 + 0.015 * i, 3)
    final = Display(opacity=round(0.2 + 0.015 * 49, 3))
    assert explorer.method.value == "layer_cam"
    expected = explain_picture(lite, "chelsea", "layer_cam", display=final)
    np.testing.assert_array_equal(explorer.view.rendered(), expected)
    explorer.opacity.value = 0.5
    explorer.method.value = "grad_cam"


def _upload(explorer, name: str, content: bytes) -> None:
    explorer.upload.value = ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
                              "last_modified": datetime.datetime.now()},)


def test_a_corrupt_upload_shows_a_message_and_keeps_the_picture(explorer) -> None:
    before = explorer.view.rendered()
    version = explorer.view.version
    chosen = explorer.image_select.value
    _upload(explorer, "broken.png", b"not a png")
    assert "could not be read as an image" in explorer.error.value
    assert "Traceback" not in explorer.error.value
    np.testing.assert_array_equal(explorer.view.rendered(), before)
    assert explorer.view.version == version and explorer.image_select.value == chosen
    assert explorer.upload.value == ()  # the same file chosen again is seen again
    # a good upload is added and shown
    good = io.BytesIO()
    Image.open(__import__("vizwidgets").data.sample_image_path("rocket")).save(good, format="PNG")
    _upload(explorer, "rocket.png", good.getvalue())
    assert explorer.image_select.value == "rocket.png" and explorer.error.value == ""
    explorer.image_select.value = "chelsea"


def test_an_empty_or_oversized_upload_is_refused_before_decoding(lite) -> None:
    ex = Explorer(lite, ["chelsea"], max_upload_bytes=60_000, max_pixels=300 * 300)
    ex.method.value = "gradient"
    ex.sign.value = "all"
    before, options = ex.view.rendered(), list(ex.image_select.options)
    big = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(big, format="PNG")
    wide = io.BytesIO()
    Image.new("RGB", (400, 400), "white").save(wide, format="PNG")  # 2 kB, but 160,000 pixels
    for name, content, words in [
        ("empty.png", b"", "empty.png is empty (0 bytes)"),
        ("noise.png", big.getvalue(), f"noise.png is {len(big.getvalue()):,} bytes, over the limit of 60,000 bytes"),
        ("wide.png", wide.getvalue(), "160000 pixels"),
    ]:
        _upload(ex, name, content)
        assert words.replace(",", "") in ex.error.value.replace(",", ""), ex.error.value
        np.testing.assert_array_equal(ex.view.rendered(), before)
        assert list(ex.image_select.options) == options and ex.method.value == "gradient" and ex.sign.value == "all"
    with pytest.raises(ValueError, match="max_pixels must be a whole number"):
        Explorer(lite, ["chelsea"], max_pixels=0)


def test_display_changes_restyle_in_the_browser_without_resending_the_map(explorer) -> None:
    view = explorer.view
    heat, mass, version = view.heat, view.mass, view.version
    explorer.opacity.value = 0.8
    explorer.cmap.value = "inferno"
    assert view.heat is heat and view.mass is mass  # only opacity and the colour table travel
    assert view.opacity == 0.8 and view.version == version + 2
    explorer.sign.value = "negative"  # a new sign: the map is normalised again (Grad-CAM has no negative part)
    assert view.heat != heat
    explorer.mode.value = "side by side"
    assert view.mode == "side by side"
    for control, value in [(explorer.opacity, 0.5), (explorer.cmap, "jet"), (explorer.sign, "absolute"),
                           (explorer.mode, "overlay")]:
        control.value = value
    assert view.heat == heat


def test_every_slider_survives_its_whole_range(lite) -> None:
    small = dataclasses.replace(
        lite, preprocess=Preprocess(size=(112, 112), mean=lite.preprocess.mean, std=lite.preprocess.std)
    )
    ex = Explorer(small, ["chelsea"])
    for name in METHODS:
        if name == "score_cam":  # 1280 forward passes: no slider of its own beyond upsample
            continue
        ex.method.value = name
        assert ex.error.value == "", (name, ex.error.value)
        for option, control in ex.option_controls.items():
            if hasattr(control, "min"):
                values = [control.min, control.max]
            else:
                values = list(getattr(control, "options", [False, True]))
            for value in values:
                value = value[1] if isinstance(value, tuple) else value
                control.value = value
                assert ex.error.value == "", (name, option, value, ex.error.value)
            control.value = next(o for o in METHODS[name].options if o.name == option).default
    ex.method.value = "grad_cam"
    for layer in ex.layer.options:
        ex.layer.value = layer
        assert ex.error.value == "", (layer, ex.error.value)
    for slider, values in [(ex.opacity, (0.0, 1.0))]:
        for value in values:
            slider.value = value
            assert ex.error.value == ""


def test_activation_browser_shows_channels_and_maximises(lite) -> None:
    browser = ActivationBrowser(lite, ["chelsea"])
    assert browser.channel.max == 1279 and browser.error.value == ""
    first = browser.map.value
    browser.channel.value = 5
    assert browser.map.value != first
    browser.layer.value = "blocks.3"
    assert browser.channel.max == 39 and browser.error.value == ""
    browser.steps.value = 8
    browser.run_maximisation()
    assert browser.synthesised.value and browser.error.value == ""


def test_maximisation_widget_gives_the_plain_functions_image(lite) -> None:
    widget = MaximisationWidget(lite)
    widget.steps.value = 8
    result = widget.run()
    expected = maximize(lite, ClassLogit("goldfinch"), steps=8, progress=False)
    np.testing.assert_array_equal(result.image.numpy(), expected.image.numpy())
    assert widget.progress.value == 8 and widget.image.value and widget.error.value == ""


def test_stop_ends_a_background_run(lite) -> None:
    widget = MaximisationWidget(lite)
    widget.steps.value = 1000
    widget.run(background=True)
    time.sleep(1.0)
    widget.stop()
    widget._thread.join(timeout=60)
    assert widget.result is not None and widget.result.steps < 1000
    assert not widget.run_button.disabled and widget.stop_button.disabled


def test_fooling_and_style_widgets_run(lite) -> None:
    fooling = FoolingWidget(lite)
    result = fooling.run()
    assert bool(result.success[0]) and fooling.error.value == ""
    assert result.steps.tolist() == fool(lite, "chelsea", "goldfinch", progress=False).steps.tolist()
    style = StyleTransferWidget(lite)
    style.steps.value = 10
    result = style.run()
    assert result.final_loss < result.start_loss and style.image.value and style.error.value == ""


def test_explorer_on_a_practitioners_own_torchvision_model(lite) -> None:
    import torchvision

    from vizwidgets.models import LoadedModel

    torch_model = torchvision.models.resnet18()  # random weights: no download needed
    torch_model.eval()
    own = LoadedModel("my_resnet18", torch_model, Preprocess(), lite.classes, "layer4")
    ex = Explorer(own, ["chelsea"])
    assert ex.error.value == "" and ex.layer.value == "layer4"
    assert "layer3" in ex.layer.options
    for method in ["gradient", "grad_cam", "guided_backprop", "lrp", "integrated_gradients"]:
        ex.method.value = method
        assert ex.error.value == "", (method, ex.error.value)
    ex.method.value = "grad_cam"
    ex.layer.value = "layer3"
    assert ex.error.value == ""
    np.testing.assert_array_equal(ex.view.rendered(), explain_picture(own, "chelsea", "grad_cam", layer="layer3"))


# --- what a newcomer met: the first image, and pictures cached by name -----------------------


def _jpeg(name: str) -> bytes:
    from vizwidgets.data import load_image

    buffer = io.BytesIO()
    load_image(name).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _upload(explorer: Explorer, name: str, content: bytes) -> None:
    explorer.upload.value = ({"name": name, "type": "image/jpeg", "size": len(content),
                              "content": memoryview(content),
                              "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def test_explorer_opens_on_the_course_cat_by_default(lite) -> None:
    default = Explorer(lite)
    assert default.image_select.value == "chelsea" == default.image_select.options[0]
    assert "Egyptian cat" in default.bars.value
    assert ActivationBrowser(lite).image_select.value == "chelsea"


def test_two_different_uploads_under_one_name_show_the_second(lite) -> None:
    explorer = Explorer(lite, ["chelsea"])
    _upload(explorer, "photo.jpg", _jpeg("coffee"))
    assert explorer.image_select.value == "photo.jpg" and explorer.error.value == ""
    assert "espresso" in explorer.bars.value
    first = explorer.view.rendered()
    _upload(explorer, "photo.jpg", _jpeg("orange"))  # same name, other picture
    assert explorer.error.value == ""
    assert "orange" in explorer.bars.value and "espresso" not in explorer.bars.value
    second = explorer.view.rendered()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, explain_picture(lite, _jpeg("orange"), "grad_cam"))
    explorer.image_select.value = "chelsea"  # away and back: still the second
    explorer.image_select.value = "photo.jpg"
    np.testing.assert_array_equal(explorer.view.rendered(), second)


def test_an_upload_named_like_a_bundled_image_does_not_replace_it(lite) -> None:
    explorer = Explorer(lite, ["chelsea", "coffee"])
    cat = explorer.view.rendered()
    _upload(explorer, "chelsea", _jpeg("baboon"))
    assert explorer.image_select.value == "chelsea (upload)"
    assert "baboon" in explorer.bars.value
    explorer.image_select.value = "chelsea"
    np.testing.assert_array_equal(explorer.view.rendered(), cat)
    assert "Egyptian cat" in explorer.bars.value


def test_a_path_whose_file_changed_shows_the_new_file(lite, tmp_path) -> None:
    import os

    path = tmp_path / "picture.jpg"
    path.write_bytes(_jpeg("coffee"))
    explorer = Explorer(lite, ["chelsea"])
    explorer.path.value = str(path)
    assert "espresso" in explorer.bars.value
    path.write_bytes(_jpeg("orange"))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a later mtime for sure
    explorer.image_select.value = "chelsea"
    explorer.image_select.value = str(path)
    assert "orange" in explorer.bars.value
    np.testing.assert_array_equal(explorer.view.rendered(), explain_picture(lite, str(path), "grad_cam"))


def test_a_warning_about_the_map_is_shown_in_the_explorer(lite) -> None:
    """At 112 x 112, Grad-CAM at the stem has no positive evidence: the map is all zero. The
    learner sees why in the widget (a warning in a callback would go to a hidden log), also
    when the map comes back from the cache."""
    small = dataclasses.replace(
        lite, preprocess=Preprocess(size=(112, 112), mean=lite.preprocess.mean, std=lite.preprocess.std)
    )
    ex = Explorer(small, ["chelsea"])
    assert ex.note.value == ""
    misses = ex.session.maps.misses
    ex.layer.value = "stem"
    assert ex.session.maps.misses == misses + 1
    assert "all zero" in ex.note.value and ex.error.value == ""
    ex.layer.value = "head"
    assert ex.note.value == ""
    misses = ex.session.maps.misses
    ex.layer.value = "stem"  # from the cache: the note comes back with the map
    assert ex.session.maps.misses == misses and "all zero" in ex.note.value


def test_the_explorer_state_is_the_single_source_of_truth(lite) -> None:
    """Controls write the state; drawing reads only the state (never the controls again)."""
    ex = Explorer(lite, ["chelsea", "coffee"])
    assert dict(ex.state.request.options) == {name: c.value for name, c in ex.option_controls.items()}
    ex.option_controls["upsample"].value = False
    assert dict(ex.state.request.options)["upsample"] is False
    ex.image_select.value = "coffee"  # other changes keep the option
    assert ex.state.request.image == "coffee" and dict(ex.state.request.options)["upsample"] is False
    np.testing.assert_array_equal(ex.view.rendered(), explain_picture(lite, "coffee", "grad_cam", upsample=False))
    ex.option_controls["upsample"]._trait_values["value"] = True  # a control changed behind the state's back
    ex.opacity.value = 0.4  # redraw: from the state, so still without upsampling
    np.testing.assert_array_equal(
        ex.view.rendered(), explain_picture(lite, "coffee", "grad_cam", upsample=False, display=Display(opacity=0.4))
    )
