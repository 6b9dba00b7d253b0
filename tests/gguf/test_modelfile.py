"""The Ollama Modelfile written beside a GGUF: FROM, TEMPLATE for ChatML, SYSTEM, stops; refusals; names."""
from __future__ import annotations

from swiftkit.gguf import modelfile
from swiftkit.gguf.chat_template import IM_END, IM_START

STOPS = (IM_END, IM_START)


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_chatml_has_from_template_system_and_a_stop_per_stop():
    text = modelfile.render("robot-q8_0.gguf", "Modelfile", chatml=True, system="You are Swift-Robot.",
                            stops=STOPS)
    lines = lines_of(text)
    assert lines[0].startswith("# ") and "ollama create NAME -f Modelfile" in lines[0]
    assert lines[1] == "FROM ./robot-q8_0.gguf"
    assert f'TEMPLATE """{modelfile.CHATML_TEMPLATE}"""' in text
    assert 'SYSTEM """You are Swift-Robot."""' in lines
    assert [ln for ln in lines if ln.startswith("PARAMETER stop")] == [
        'PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|im_start|>"']
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_the_comment_names_the_modelfile_it_is_in():
    text = modelfile.render("a-f16.gguf", "a-f16.Modelfile", chatml=True, system=None, stops=STOPS)
    assert "ollama create NAME -f a-f16.Modelfile && ollama run NAME" in text
    assert "FROM ./a-f16.gguf" in text


def test_not_chatml_has_no_template_line():
    text = modelfile.render("llama.gguf", "Modelfile", chatml=False, system="Be brief.", stops=())
    assert "TEMPLATE" not in text
    assert "FROM ./llama.gguf" in lines_of(text)
    assert 'SYSTEM """Be brief."""' in lines_of(text)
    assert "PARAMETER" not in text


def test_no_system_gives_no_system_line():
    text = modelfile.render("m.gguf", "Modelfile", chatml=True, system=None, stops=STOPS)
    assert "SYSTEM" not in text
    assert "TEMPLATE" in text


def test_an_empty_system_is_still_written():
    text = modelfile.render("m.gguf", "Modelfile", chatml=True, system="", stops=STOPS)
    assert 'SYSTEM """"""' in lines_of(text)


def test_a_multiline_system_is_kept_whole_between_triple_quotes():
    system = 'You are "Swift-Robot".\nBe brief.'
    assert modelfile.problems(system) == []
    text = modelfile.render("m.gguf", "Modelfile", chatml=True, system=system, stops=STOPS)
    assert f'SYSTEM """{system}"""\n' in text


def test_a_system_prompt_holding_triple_quotes_is_refused_with_a_fix():
    (problem,) = modelfile.problems('Answer like this: """code"""')
    assert '"""' in problem.message and "Modelfile" in problem.message
    assert problem.fix is not None and "train.system" in problem.fix


def test_plain_and_absent_system_prompts_pass():
    assert modelfile.problems(None) == []
    assert modelfile.problems("") == []
    assert modelfile.problems('Say "hi" and \'bye\'.') == []


def test_name_for_one_file_and_for_several():
    assert modelfile.name_for("robot-q8_0.gguf", several=False) == "Modelfile"
    assert modelfile.name_for("robot-q8_0.gguf", several=True) == "robot-q8_0.Modelfile"
    assert modelfile.name_for("robot.v2-f16.gguf", several=True) == "robot.v2-f16.Modelfile"


def test_the_chatml_template_formats_as_chatml():
    template = modelfile.CHATML_TEMPLATE
    assert "<|im_start|>{{ .Role }}" in template
    assert "{{ .Content }}<|im_end|>" in template
    assert template.endswith("<|im_start|>assistant\n")
    assert template.startswith("{{- range .Messages }}")
    assert '"""' not in template  # it sits inside TEMPLATE """..."""
