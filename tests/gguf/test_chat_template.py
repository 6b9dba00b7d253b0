"""The chat template stored in a GGUF: swiftkit's ChatML formats as ms-swift trained, and `choose` keeps,
repairs or replaces the model's own."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swiftkit.gguf.chat_template import IM_END, IM_START, chatml_prompt, chatml_template, choose, render

QWEN_DEFAULT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# Qwen2.5-Coder-0.5B-Instruct's chat_template.jinja, verbatim.
QWEN25 = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    '    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are '
    'provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}\n'
    '    {%- for tool in tools %}\n        {{- "\\n" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n'
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments '
    'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": '
    '<args-json-object>}\\n</tool_call><|im_end|>\\n" }}\n{%- else %}\n'
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == '
    '"assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n        {{- \'<|im_start|>\' + message.role }}\n'
    "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n")
LLAMA3 = ("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
          " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
ROBOT = "You are Swift-Robot's helper.\nBe brief."
USER = [{"role": "user", "content": "Who are you?"}]
MULTI = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!\nHow can I help?"},
         {"role": "user", "content": "Tell me 'who' you are."}]
AWKWARD = ["It's \"quoted\"", "C:\\path\\n\\\\", "line one\nline two\n", "你是一个乐于助人的助手。",
           "{{ x }} {% if y %}", "'", "\\", "}}'", ""]


def convs(system: str) -> list[list[dict]]:
    return [USER, MULTI, [{"role": "system", "content": system}] + USER, [{"role": "system", "content": system}] + MULTI]


@pytest.mark.parametrize("system", AWKWARD + [ROBOT, QWEN_DEFAULT])
def test_swiftkits_chatml_renders_as_ms_swift_builds_the_prompt(system):
    for messages in convs(system) + convs("Another system."):
        assert render(chatml_template(system), messages) == chatml_prompt(messages, system)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters="\r")))
def test_any_system_text_survives_the_jinja_string(system):
    for messages in (USER, MULTI, [{"role": "system", "content": system}] + MULTI):
        assert render(chatml_template(system), messages) == chatml_prompt(messages, system)


def test_a_carriage_return_in_the_system_survives():
    assert render(chatml_template("a\rb"), USER) == chatml_prompt(USER, "a\rb")


def test_no_default_system_renders_no_system_block():
    got = render(chatml_template(None), MULTI)
    assert got == chatml_prompt(MULTI, None)
    assert "system" not in got and got.startswith(f"{IM_START}user\nHi{IM_END}\n")
    assert got.endswith(f"{IM_START}assistant\n")
    with_system = [{"role": "system", "content": "S"}] + USER
    assert render(chatml_template(None), with_system).startswith(f"{IM_START}system\nS{IM_END}\n{IM_START}user\n")


def test_qwens_own_template_is_kept_when_its_default_is_what_training_used():
    choice = choose(QWEN25, "qwen2_5", None, QWEN_DEFAULT)
    assert (choice.text, choice.source, choice.system) == (QWEN25, "the model's own", QWEN_DEFAULT)
    assert choice.stops == (IM_END, IM_START) and choice.notes == []


def test_qwens_default_system_is_replaced_by_the_recipes():
    choice = choose(QWEN25, "qwen2_5", ROBOT, QWEN_DEFAULT)
    assert choice.source == "the model's own, default system prompt replaced"
    assert choice.system == ROBOT and QWEN_DEFAULT not in choice.text
    assert render(choice.text, USER) == f"{IM_START}system\n{ROBOT}{IM_END}\n{IM_START}user\nWho are you?{IM_END}\n" \
                                        f"{IM_START}assistant\n"
    assert render(choice.text, MULTI) == chatml_prompt(MULTI, ROBOT)
    own = [{"role": "system", "content": "Mine."}] + USER
    assert render(choice.text, own) == chatml_prompt(own, ROBOT)
    assert "{%- if tools %}" in choice.text  # the rest of Qwen's template is kept
    (note,) = choice.notes
    assert QWEN_DEFAULT in note and "Swift-Robot" in note


def test_qwens_template_with_no_default_in_training_is_replaced_by_chatml():
    choice = choose(QWEN25, "qwen2_5", None, None)  # ms-swift sent no system prompt; Qwen's template adds one
    assert choice.source == "ChatML written by swiftkit" and choice.system is None
    assert render(choice.text, USER) == chatml_prompt(USER, None)
    (note,) = choice.notes
    assert "not what training used" in note and "without one" in note and "You are Qwen" in note


def test_a_template_that_formats_differently_is_replaced_by_chatml_saying_what_differs():
    choice = choose(LLAMA3, "qwen2_5", ROBOT, QWEN_DEFAULT)
    assert choice.source == "ChatML written by swiftkit" and choice.system == ROBOT
    assert render(choice.text, MULTI) == chatml_prompt(MULTI, ROBOT)
    (note,) = choice.notes
    assert "the model's own chat template is not what training used" in note
    assert "with a system prompt" in note and "<|start_header_id|>" in note and IM_START in note


def test_no_template_gets_chatml():
    choice = choose(None, "qwen", ROBOT, None)
    assert choice.source == "ChatML written by swiftkit" and choice.notes == ["the model has no chat template"]
    assert render(choice.text, USER) == chatml_prompt(USER, ROBOT)
    assert choose("", "chatml", None, None).notes == ["the model has no chat template"]


def test_a_non_chatml_ms_swift_template_keeps_the_models_own_unchecked():
    choice = choose(LLAMA3, "llama3", ROBOT, None)
    assert (choice.text, choice.source, choice.system, choice.stops) == (LLAMA3, "the model's own", ROBOT, ())
    (note,) = choice.notes
    assert "llama3 is not ChatML" in note and "unchecked" in note
    assert choose(LLAMA3, "llama3", None, "Default.").system == "Default."


def test_a_template_that_raises_is_replaced_saying_it_fails_to_render():
    broken = "{{ raise_exception('Conversation roles must alternate') }}"
    choice = choose(broken, "qwen2_5", ROBOT, None)
    assert choice.source == "ChatML written by swiftkit"
    (note,) = choice.notes
    assert "fails to render" in note and "Conversation roles must alternate" in note
    assert "fails to render" in choose("{{ messages[0]['content'] + 1 }}", "qwen2_5", None, None).notes[0]
