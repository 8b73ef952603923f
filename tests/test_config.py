from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scalelab.config import RunConfig, apply_overrides, dump_config, load_config, parse_override
from scalelab.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_are_valid_and_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None)
    assert cfg.model.family == "hstu" and cfg.train.num_negatives == 128
    p = write(tmp_path, yaml.safe_dump(dump_config(cfg)))
    assert load_config(p) == cfg


def test_unknown_key_names_file_field_and_suggests(tmp_path: Path) -> None:
    p = write(tmp_path, "model:\n  depht: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: model.depht: unknown key")
    assert "did you mean 'depth'" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("model:\n  depth: -2\n", "model.depth"),
        ("model:\n  depth: two\n", "model.depth"),
        ("train:\n  lr: -0.1\n", "train.lr"),
        ("data:\n  fraction: 1.5\n", "data.fraction"),
        ("eval:\n  ks: [0, 10]\n", "eval.ks"),
        ("train:\n  device: tpu\n", "train.device"),
        ("train:\n  betas: [0.9, 1.2]\n", "train.betas"),
        ("data:\n  split: leave_two_out\n  min_seq_len: 2\n", "data"),
        ("model:\n  width: 50\n  heads: 3\n", "model"),
        ("bogus: 1\n", "bogus"),
    ],
)
def test_invalid_values_are_one_line_errors(tmp_path: Path, text: str, field: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: {field}")
    assert "\n" not in str(e.value)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    p = write(tmp_path, "model:\n  depth: 2\n  width: [1,\n")
    with pytest.raises(ConfigError, match=rf"^{p}:\d+: YAML syntax error"):
        load_config(p)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config("/nonexistent/cfg.yaml")


def test_overrides_apply_on_top_of_file_with_yaml_types(tmp_path: Path) -> None:
    p = write(tmp_path, "model:\n  depth: 2\n  width: 64\n")
    cfg = load_config(p, ["model.depth=8", "eval.ks=[5, 20]", "train.grad_clip=null", "name=abc"])
    assert cfg.model.depth == 8 and cfg.model.width == 64
    assert cfg.eval.ks == [5, 20] and cfg.train.grad_clip is None and cfg.name == "abc"


def test_override_errors() -> None:
    with pytest.raises(ConfigError, match=r"expected KEY\.PATH=VALUE"):
        parse_override("model.depth")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])
    with pytest.raises(ConfigError, match=r"<defaults>: model.dpeth: unknown key"):
        load_config(None, ["model.dpeth=3"])


def test_override_does_not_mutate_input() -> None:
    raw = {"model": {"depth": 2}}
    apply_overrides(raw, ["model.depth=4"])
    assert raw == {"model": {"depth": 2}}


def test_every_field_is_described() -> None:
    def walk(model: type) -> None:
        for name, f in model.model_fields.items():  # type: ignore[attr-defined]
            ann = f.annotation
            if hasattr(ann, "model_fields"):
                walk(ann)
            else:
                assert f.description, f"{model.__name__}.{name} has no description"

    walk(RunConfig)
