#!/usr/bin/env python3
"""Golden renders of Hugging Face chat templates, produced by transformers' own Jinja machinery.

Writes (relative to the repository root):
  Tests/Fixtures/templates/conversations.json  the conversations (defined below, in CONVERSATIONS)
  Tests/Fixtures/templates/goldens.json        every render: template x conversation x add_generation_prompt (x variant)

Templates come from two places:
  shared  /work/shared/chat_templates/*.jinja (override with --shared DIR), unless a file of the same name is in local/
  local   Tests/Fixtures/templates/local/*.jinja (redistributable copies, PyPI-sourced and hand-written templates)

How a render is made (the same path as `tokenizer.apply_chat_template(conv, tools=..., documents=...,
add_generation_prompt=..., tokenize=False, **kwargs)` in transformers 5.24):
  1. transformers.utils.chat_template_utils._normalize_chat_messages(messages)   (drops keys whose value is None)
  2. template_kwargs = {bos_token, eos_token (the tokenizer's special_tokens_map), **extra kwargs}
  3. transformers.utils.chat_template_utils.render_jinja_template(conversations=[messages], tools=..., documents=...,
     chat_template=..., add_generation_prompt=..., continue_final_message=..., **template_kwargs)
     which compiles with _compile_jinja_template (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
     extensions=[AssistantTracker ({% generation %}), loopcontrols]), transformers' tojson, raise_exception,
     strftime_now, dict, namespace) and renders.

Fixed clock: transformers' `strftime_now(fmt)` is `datetime.now().strftime(fmt)`. We replace the `datetime` name in
transformers.utils.chat_template_utils with a subclass whose now() returns the naive datetime 2025-01-15 10:30:00, so
every template that reads the date sees Wednesday 15 January 2025, 10:30:00 (C locale). Nothing else is patched.

Usage:
  /work/venv/bin/python Tests/Reference/templates/make_template_goldens.py [--shared DIR] [--crosscheck]
    --crosscheck  also renders every case through a real PreTrainedTokenizerFast.apply_chat_template(tokenize=False)
                  and asserts identical output / identical error type (slow-ish, ~1 min).
It always checks the huggingface.js e2e goldens (shared/goldens_hfjs_e2e.json) against this machinery first.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import os
import re
import sys
import traceback

import jinja2
import transformers
from transformers.utils import chat_template_utils as ctu

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
FIXTURES = os.path.join(REPO, "Tests", "Fixtures", "templates")
LOCAL_DIR = os.path.join(FIXTURES, "local")
DEFAULT_SHARED = "/work/shared/chat_templates"

FIXED_NOW = _dt.datetime(2025, 1, 15, 10, 30, 0)  # naive, no timezone


# ---------------------------------------------------------------------------------------------------------------
# Fixed clock
# ---------------------------------------------------------------------------------------------------------------
class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: D401 - same signature as datetime.now
        if tz is not None:
            return FIXED_NOW.replace(tzinfo=tz)
        return FIXED_NOW


def install_fixed_clock():
    # strftime_now is a closure in _cached_compile_jinja_template that looks up the module-global `datetime`
    # at call time, so swapping the module global is enough (also for templates compiled before this call).
    ctu.datetime = _FixedDatetime


# ---------------------------------------------------------------------------------------------------------------
# Conversations
# ---------------------------------------------------------------------------------------------------------------
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
                    "days": {"type": "integer", "description": "Forecast length in days", "default": 1},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_documents",
            "description": "Search the knowledge base. Returns matching snippets – «quoted» Unicode allowed.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Free-text query"},
                    "filters": {
                        "type": "object",
                        "description": "Optional filters",
                        "properties": {
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "min_score": {"type": "number"},
                            "exact": {"type": "boolean"},
                        },
                    },
                    "limit": {"type": ["integer", "string"], "description": "Maximum results, or 'all'"},
                },
                "required": ["query"],
            },
        },
    },
]

WEATHER_CALL = {
    "id": "call1ABCD",  # 9 alphanumerics: Mistral templates require this
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "arguments": {"location": "Paris, France", "unit": "celsius", "days": 2},
    },
}
SEARCH_CALL = {
    "id": "call2EFGH",
    "type": "function",
    "function": {
        "name": "search_documents",
        "arguments": {"query": "café «menu» \"prix\"", "filters": {"tags": ["food", "paris"], "min_score": 0.5, "exact": False}, "limit": 10},
    },
}

UNICODE_TEXT = (
    "CJK: 你好，世界。日本語のテキスト。한국어 문장.\n"
    "Emoji: 👨‍👩‍👧‍👦 family (ZWJ), 🏳️‍🌈 flag, 👍🏽 skin tone, 🇫🇷 regional indicators.\n"
    "RTL: مرحبا بالعالم — שלום עולם.\n"
    "Combining: e\u0301 a\u0308 n\u0303 (decomposed) vs é ä ñ (precomposed); Z\u0351\u0308\u036blgo.\n"
    "Quotes \"double\" and 'single' and `backticks`; backslashes \\ \\n \\\\ C:\\path\\to\\file.\n"
    "Template-looking text: {{ messages }} {% if true %}x{% endif %} {# comment #} <|im_end|> </s>\n"
    "Tabs\tand trailing spaces   \n\nLast line after a blank line."
)

CONVERSATIONS = [
    {"name": "single_user", "messages": [{"role": "user", "content": "Hello!"}]},
    {
        "name": "system_user",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    },
    {
        "name": "multi_turn",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Hi, who are you?"},
            {"role": "assistant", "content": "I am an AI assistant. How can I help?"},
            {"role": "user", "content": "Tell me a joke about cats."},
        ],
    },
    {
        "name": "six_turn",
        "messages": [
            {"role": "user", "content": "Let's count. One?"},
            {"role": "assistant", "content": "Two."},
            {"role": "user", "content": "Three?"},
            {"role": "assistant", "content": "Four."},
            {"role": "user", "content": "Five?"},
            {"role": "assistant", "content": "Six."},
        ],
    },
    {
        "name": "empty_contents",
        "messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": ""},
        ],
    },
    {
        "name": "unicode",
        "messages": [
            {"role": "system", "content": "Réponds en français. 答えは日本語で。"},
            {"role": "user", "content": UNICODE_TEXT},
            {"role": "assistant", "content": "  Leading and trailing whitespace, and \"quotes\" \\ {{ x }}  \n"},
            {"role": "user", "content": "\n\tOK? 👍\n"},
        ],
    },
    {
        "name": "assistant_last",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a haiku about the sea."},
            {"role": "assistant", "content": "Waves fold into foam,"},
        ],
        "continue_final_message": True,
    },
    {
        "name": "first_assistant",
        "messages": [
            {"role": "assistant", "content": "Hello, I am the assistant and I speak first."},
            {"role": "user", "content": "Okay. What can you do?"},
        ],
    },
    {
        "name": "multimodal_parts",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "text", "text": "What is in this image?"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A cat on a sofa."}]},
            {"role": "user", "content": [{"type": "text", "text": "What colour is it?"}]},
        ],
    },
    {
        "name": "tools_no_calls",
        "requires": ["tools", "tool_calls"],
        "tools": TOOLS,
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "What's the weather like in Paris today?"},
        ],
    },
    {
        "name": "tool_call_single",
        "requires": ["tools", "tool_calls"],
        "tools": TOOLS,
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "What's the weather like in Paris today?"},
            {"role": "assistant", "content": "", "tool_calls": [WEATHER_CALL]},
            {"role": "tool", "tool_call_id": "call1ABCD", "name": "get_current_weather", "content": "{\"temperature\": 22.5, \"condition\": \"sunny\"}"},
            {"role": "assistant", "content": "It is sunny and 22.5 °C in Paris."},
            {"role": "user", "content": "Thanks! And tomorrow?"},
        ],
    },
    {
        "name": "tool_call_parallel",
        "requires": ["tools", "tool_calls"],
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Weather in Paris, and find cafés with a menu."},
            {"role": "assistant", "content": "Let me check both.", "tool_calls": [WEATHER_CALL, SEARCH_CALL]},
            {"role": "tool", "tool_call_id": "call1ABCD", "name": "get_current_weather", "content": "{\"temperature\": 22.5}"},
            {"role": "tool", "tool_call_id": "call2EFGH", "name": "search_documents", "content": "[\"Café de Flore\", \"Les Deux Magots\"]"},
        ],
    },
    {
        "name": "tool_call_null_content",
        "requires": ["tools", "tool_calls"],
        "tools": TOOLS[:1],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
            {"role": "tool", "tool_call_id": "call1ABCD", "name": "get_current_weather", "content": "22.5"},
        ],
    },
    {
        "name": "tools_nullable_type",
        "requires": ["tools", "tool_calls"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Look something up.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "key": {"type": ["string", "null"], "description": "Key, or null for all"},
                            "ids": {"type": "array", "items": {"type": "integer"}},
                            "opts": {"type": "object", "additionalProperties": {"type": "number"}},
                        },
                        "required": ["key"],
                    },
                },
            }
        ],
        "messages": [{"role": "user", "content": "Look up everything."}],
    },
    {
        "name": "tools_cohere_format",
        "requires": ["parameter_definitions"],
        "tools": [
            {
                "name": "internet_search",
                "description": "Returns a list of relevant document snippets for a textual query retrieved from the internet",
                "parameter_definitions": {"query": {"description": "Query to search the internet with", "type": "str", "required": True}},
            },
            {
                "name": "directly_answer",
                "description": "Calls a standard (un-augmented) AI chatbot to generate a response given the conversation history",
                "parameter_definitions": {},
            },
        ],
        "messages": [
            {"role": "system", "content": "You are a research assistant."},
            {"role": "user", "content": "Whats the biggest penguin in the world?"},
        ],
    },
    {
        "name": "functions_role",
        "requires": ["'FUNCTIONS'"],
        "messages": [
            {"role": "functions", "content": "[{\"name\": \"get_stock_price\", \"description\": \"Get the current stock price\", \"parameters\": {\"type\": \"object\", \"properties\": {\"symbol\": {\"type\": \"string\"}}, \"required\": [\"symbol\"]}}]"},
            {"role": "user", "content": "What is the price of NVDA?"},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_stock_price", "arguments": "{\"symbol\": \"NVDA\"}"}}]},
            {"role": "tool", "content": "{\"price\": 123.45}"},
        ],
    },
    {
        "name": "documents_rag",
        "requires": ["documents"],
        "documents": [
            {"title": "Tall penguins", "text": "Emperor penguins are the tallest, growing up to 122 cm."},
            {"title": "Penguin habitats", "text": "Emperor penguins only live in Antarctica."},
        ],
        "messages": [
            {"role": "system", "content": "Answer using the documents."},
            {"role": "user", "content": "What are the tallest living penguins?"},
        ],
    },
    {
        "name": "reasoning",
        "requires": ["reasoning", "thinking", "<think>"],
        "messages": [
            {"role": "system", "content": "Think step by step."},
            {"role": "user", "content": "What is 17 * 3?"},
            {"role": "assistant", "reasoning_content": "17 * 3 = 51.\nDouble-check: 51 / 3 = 17.", "content": "51"},
            {"role": "user", "content": "And 51 + 9?"},
        ],
    },
]

# ---------------------------------------------------------------------------------------------------------------
# Special tokens (the tokenizer's bos/eos as apply_chat_template would pass them). Missing key = not passed.
# ---------------------------------------------------------------------------------------------------------------
DEFAULT_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}
LLAMA3 = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
QWEN = {"eos_token": "<|im_end|>"}  # Qwen tokenizers have bos_token = null (so the template sees it undefined)
DEEPSEEK = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}
DEEPSEEK_CODER = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<|EOT|>"}
GEMMA = {"bos_token": "<bos>", "eos_token": "<eos>"}
COHERE = {"bos_token": "<BOS_TOKEN>", "eos_token": "<|END_OF_TURN_TOKEN|>"}
PHI3 = {"bos_token": "<s>", "eos_token": "<|endoftext|>"}
GRANITE = {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>"}
CHATML_S = {"bos_token": "<s>", "eos_token": "<|im_end|>"}

SPECIAL_TOKENS = {
    # chujiezheng/chat_templates
    "chatml.jinja": CHATML_S,
    "falcon-instruct.jinja": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
    "gemma-it.jinja": GEMMA,
    "granite-3.0-instruct.jinja": GRANITE,
    "llama-3-instruct.jinja": LLAMA3,
    "phi-3.jinja": PHI3,
    "phi-3-small.jinja": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
    "qwen2.5-instruct.jinja": QWEN,
    # huggingface.js e2e (values from goldens_hfjs_e2e.json where given)
    "extra_transformers_default_chatml.jinja": CHATML_S,
    "extra_HuggingFaceH4__zephyr-7b-gemma-v0.1.jinja": GEMMA,
    "extra_Qwen__Qwen1.5-72B-Chat.jinja": {"eos_token": "<|im_end|>"},
    "extra_cognitivecomputations__dolphin-2.5-mixtral-8x7b.jinja": {"bos_token": "<s>", "eos_token": "<|im_end|>"},
    "extra_deepseek-ai__deepseek-llm-7b-chat.jinja": DEEPSEEK,
    "extra_deepseek-ai__DeepSeek-R1.jinja": DEEPSEEK,
    "extra_TheBloke__deepseek-coder-33B-instruct-AWQ.jinja": DEEPSEEK_CODER,
    "extra_deepseek-ai__deepseek-coder-33b-instruct.jinja": DEEPSEEK_CODER,
    "extra_ericzzz__falcon-rw-1b-chat.jinja": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
    "extra_CohereForAI__c4ai-command-r-v01.jinja": COHERE,
    "extra_CohereForAI__c4ai-command-r-v01_JSON_Schema.jinja": COHERE,
    "extra_CohereLabs__c4ai-command-a-03-2025.jinja": COHERE,
    "extra_CohereLabs__command-a-reasoning-08-2025.jinja": COHERE,
    "extra_NousResearch__Hermes-2-Pro-Llama-3-8B_JSON_Schema.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>"},
    "extra_meta-llama__Llama-3.1-8B-Instruct.jinja": LLAMA3,
    "extra_meta-llama__Llama-3.2-11B-Vision-Instruct.jinja": LLAMA3,
    "extra_meta-llama__Llama-Guard-3-11B-Vision.jinja": LLAMA3,
    "extra_MadeAgents__Hammer2.1.jinja": QWEN,
    "extra_Qwen__Qwen2.5-7B-Instruct.jinja": QWEN,
    "extra_Qwen__Qwen2.5-VL-7B-Instruct.jinja": QWEN,
    "extra_Qwen__Qwen3-0.6B.jinja": QWEN,
    "extra_Qwen__Qwen3.5-4B.jinja": QWEN,
    "extra_openbmb__MiniCPM3-4B.jinja": {"bos_token": "<s>", "eos_token": "<|im_end|>"},
    "extra_ai21labs__AI21-Jamba-Large-1.6.jinja": {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"},
    "extra_HuggingFaceTB__SmolLM3-3B.jinja": QWEN,
    "extra_moonshotai__Kimi-K2-Thinking.jinja": {"bos_token": "[BOS]", "eos_token": "[EOS]"},
    "extra_LiquidAI__LFM2.5-VL-450M.jinja": {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>"},
    "extra_zai-org__GLM-5.1.jinja": {"eos_token": "<|endoftext|>"},
    "extra_google__gemma-2-2b-it.jinja": GEMMA,
    "extra_ibm-granite__granite-3.3-2b-instruct.jinja": GRANITE,
    # mistral.rs
    "extra_mistralrs_deepseek_tool_call.jinja": DEEPSEEK,
    "extra_mistralrs_gemma3n.jinja": GEMMA,
    "extra_mistralrs_idefics3.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<end_of_utterance>"},
    "extra_mistralrs_llama3.jinja": LLAMA3,
    "extra_mistralrs_nousresearch_hermes2_pro_tool_use.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>"},
    "extra_mistralrs_phi3.5.jinja": PHI3,
    "extra_mistralrs_phi3.jinja": PHI3,
    "extra_mistralrs_smollm3.jinja": QWEN,
    # local, from PyPI packages
    "trl_gptoss.jinja": {"bos_token": "<|startoftext|>", "eos_token": "<|return|>"},
    "trl_qwen3_training.jinja": QWEN,
    "trl_qwen3_vl.jinja": QWEN,
    "trl_qwen3_instruct_2507.jinja": QWEN,
    "trl_qwen2_5_vl_training.jinja": QWEN,
    "trl_deepseekv3.jinja": DEEPSEEK,
    "trl_deepseek_r1_distill.jinja": DEEPSEEK,
    "trl_glm4moe.jinja": {"eos_token": "<|endoftext|>"},
    "trl_phi3_5_training.jinja": PHI3,
    "trl_smolvlm.jinja": {"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>"},
    "axolotl_phi_4.jinja": {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"},
    "axolotl_qwen3.jinja": QWEN,
    "transformers_qwen2_audio_default.jinja": {"eos_token": "<|im_end|>"},
}


def special_tokens_for(name: str) -> dict:
    return dict(SPECIAL_TOKENS.get(name, DEFAULT_TOKENS))


# Extra kwargs some templates read. Each variant is rendered (in addition to the plain render) for the conversations
# listed in VARIANT_CONVERSATIONS that the template is rendered with anyway.
VARIANTS = {
    "extra_hf-internal-testing__llama-tokenizer_default.jinja": [{"USE_DEFAULT_PROMPT": True}],
    "extra_Qwen__Qwen3-0.6B.jinja": [{"enable_thinking": False}],
    "extra_Qwen__Qwen3.5-4B.jinja": [{"enable_thinking": False}],
    "extra_HuggingFaceTB__SmolLM3-3B.jinja": [{"enable_thinking": False}],
    "extra_mistralrs_smollm3.jinja": [{"enable_thinking": False}],
    "extra_zai-org__GLM-5.1.jinja": [{"enable_thinking": False}],
    "extra_CohereLabs__command-a-reasoning-08-2025.jinja": [{"reasoning": True}],
    "extra_meta-llama__Llama-3.1-8B-Instruct.jinja": [{"tools_in_user_message": False, "date_string": "01 Feb 2025"}],
    "extra_ibm-granite__granite-3.3-2b-instruct.jinja": [{"thinking": True}],
    "trl_gptoss.jinja": [{"reasoning_effort": "high", "model_identity": "You are NekoChat.", "builtin_tools": ["python"]}],
    "trl_qwen3_training.jinja": [{"enable_thinking": False}],
    "trl_glm4moe.jinja": [{"enable_thinking": False}],
    "axolotl_qwen3.jinja": [{"enable_thinking": False}],
}
VARIANT_CONVERSATIONS = ["system_user", "multi_turn", "reasoning", "tools_no_calls", "tool_call_single"]

# Hand-written templates: which conversations, and dedicated variable sets.
HAND_CONVERSATIONS = {
    "hand_loops_macros.jinja": ["multi_turn", "single_user", "six_turn"],
    "hand_filters.jinja": ["multi_turn", "tool_call_single"],
    "hand_tests_operators.jinja": ["multi_turn", "tool_call_single"],
    "hand_strings_dicts.jinja": ["multi_turn", "tool_call_single", "reasoning"],
    "hand_printing_undefined.jinja": ["multi_turn"],
    "hand_whitespace_raw.jinja": ["multi_turn", "six_turn"],
    "hand_numbers_clock.jinja": ["single_user"],
    "hand_runtime_errors.jinja": ["single_user"],
}
RUNTIME_ERROR_CASES = [
    "none", "raise_exception", "undefined_attribute", "undefined_item", "undefined_call", "none_attribute_call",
    "str_plus_int", "str_plus_list", "int_plus_none", "division_by_zero", "floor_division_by_zero",
    "index_out_of_range", "list_append_sandbox", "dict_update_sandbox", "namespace_underscore", "dunder_access",
    "range_too_big", "tojson_undefined", "tojson_not_serializable", "int_filter_bad_base", "unknown_method",
    "compare_str_int", "iterate_int", "macro_too_many_args", "str_format_missing", "percent_format_mismatch",
    "concat_binds_tighter_than_plus",
]


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------
def _template_lineno(exc: BaseException):
    lineno = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _error_record(exc: BaseException, stage: str) -> dict:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        rec = {"type": type(exc).__name__, "message": exc.message, "lineno": exc.lineno, "stage": stage}
    else:
        rec = {"type": type(exc).__name__, "message": str(exc), "stage": stage}
        lineno = _template_lineno(exc)
        if lineno is not None:
            rec["lineno"] = lineno
    if re.search(r"0x[0-9a-f]{6,}", rec["message"]):
        raise RuntimeError(f"non-deterministic error message: {rec['message']!r}")
    return rec


def render_case(template: str, messages, tools, documents, add_generation_prompt: bool, template_kwargs: dict,
                continue_final_message: bool = False) -> dict:
    """Mirror of PreTrainedTokenizerBase.apply_chat_template(tokenize=False) for one conversation."""
    try:
        ctu._compile_jinja_template(template)
    except jinja2.TemplateError as exc:  # TemplateSyntaxError / TemplateAssertionError (e.g. unknown filter)
        return {"error": _error_record(exc, "compile")}
    try:
        if len(messages) == 0:
            raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
        conv = ctu._normalize_chat_messages(messages)
        if continue_final_message and add_generation_prompt:
            raise ValueError("continue_final_message and add_generation_prompt are not compatible.")
        rendered, _ = ctu.render_jinja_template(
            conversations=[conv],
            tools=tools,
            documents=documents,
            chat_template=template,
            continue_final_message=continue_final_message,
            add_generation_prompt=add_generation_prompt,
            **template_kwargs,
        )
        return {"output": rendered[0]}
    except Exception as exc:  # noqa: BLE001 - every failure is a golden
        stage = "render" if _template_lineno(exc) is not None else "transformers"
        return {"error": _error_record(exc, stage)}


def template_messages(messages):
    """What the template actually sees as `messages` (after transformers' normalisation)."""
    conv = ctu._normalize_chat_messages(messages)
    conv = ctu._plain_template_data(conv)
    return ctu._alias_reasoning_fields(conv)


# ---------------------------------------------------------------------------------------------------------------
# Template discovery
# ---------------------------------------------------------------------------------------------------------------
def discover_templates(shared_dir: str):
    local = {os.path.basename(p): p for p in sorted(glob.glob(os.path.join(LOCAL_DIR, "*.jinja")))}
    shared = {}
    if shared_dir and os.path.isdir(shared_dir):
        shared = {os.path.basename(p): p for p in sorted(glob.glob(os.path.join(shared_dir, "*.jinja")))}
    out = []
    for name, path in sorted(shared.items()):
        if name not in local:
            out.append((name, "shared", path))
    for name, path in sorted(local.items()):
        out.append((name, "local", path))
    return out


def read_template(path: str) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def conversations_for(name: str, source_text: str):
    convs = {c["name"]: c for c in CONVERSATIONS}
    if name.startswith("syntax_"):
        return [convs["single_user"]]
    if name in HAND_CONVERSATIONS:
        return [convs[n] for n in HAND_CONVERSATIONS[name]]
    chosen = []
    for c in CONVERSATIONS:
        req = c.get("requires")
        if req and not any(r in source_text for r in req):
            continue
        chosen.append(c)
    return chosen


def build_jobs(templates):
    jobs = []
    for name, source, path in templates:
        text = read_template(path)
        tokens = special_tokens_for(name)
        for conv in conversations_for(name, text):
            variant_sets = [{}]
            if name in VARIANTS and conv["name"] in VARIANT_CONVERSATIONS:
                variant_sets += VARIANTS[name]
            if name == "hand_runtime_errors.jinja":
                variant_sets = [{"case": c} for c in RUNTIME_ERROR_CASES]
            agps = [False] if name.startswith("syntax_") or name == "hand_runtime_errors.jinja" else [False, True]
            for extra in variant_sets:
                for agp in agps:
                    jobs.append(dict(template=name, source=source, path=path, text=text, conv=conv,
                                     agp=agp, kwargs={**tokens, **extra}, cfm=False))
            if conv.get("continue_final_message") and not name.startswith(("syntax_", "hand_")):
                jobs.append(dict(template=name, source=source, path=path, text=text, conv=conv,
                                 agp=False, kwargs=dict(tokens), cfm=True))
    return jobs


def run_job(job) -> dict:
    conv = job["conv"]
    tools, documents = conv.get("tools"), conv.get("documents")
    res = render_case(job["text"], conv["messages"], tools, documents, job["agp"], job["kwargs"], job["cfm"])
    rec = {
        "template": job["template"],
        "source": job["source"],
        "conversation": conv["name"],
        "add_generation_prompt": job["agp"],
    }
    if job["cfm"]:
        rec["continue_final_message"] = True
    rec["variables"] = {**job["kwargs"], "tools": tools, "documents": documents}
    rec.update(res)
    return rec


# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------
def check_hfjs(shared_dir: str) -> None:
    path = os.path.join(shared_dir, "goldens_hfjs_e2e.json")
    if not os.path.exists(path):
        print("hfjs check: skipped (no goldens_hfjs_e2e.json)")
        return
    data = json.load(open(path, encoding="utf-8"))
    known = set(data.get("python_mismatch", {}))
    raw_ok, bad, via_tf_ok, via_tf_diff = 0, [], 0, []
    for key, case in data["cases"].items():
        text = read_template(os.path.join(shared_dir, case["template_file"]))
        # (a) the compiled template with exactly the variables the JS test passes: must match (except the known 2)
        try:
            raw = ctu._compile_jinja_template(text).render(**case["data"])
        except Exception as exc:  # noqa: BLE001
            raw = exc
        if raw == case["target"]:
            raw_ok += 1
        elif key not in known:
            bad.append(key)
        # (b) the full apply_chat_template path: transformers always passes add_generation_prompt/tools/documents and
        #     drops None-valued message keys, so a few JS cases legitimately differ
        d = dict(case["data"])
        msgs = d.pop("messages")
        tools, documents = d.pop("tools", None), d.pop("documents", None)
        agp = d.pop("add_generation_prompt", False)
        res = render_case(text, msgs, tools, documents, agp, d)
        if res.get("output") == case["target"]:
            via_tf_ok += 1
        elif key not in known:
            via_tf_diff.append(key)
    n = len(data["cases"])
    print(f"hfjs check: compiled template {raw_ok}/{n} identical ({len(known)} known JS/date-specific), unexpected: {bad}; "
          f"through apply_chat_template's path {via_tf_ok}/{n}, differing because of transformers' normalisation: {via_tf_diff}")
    if bad:
        raise SystemExit("huggingface.js goldens disagree with this machinery")


def crosscheck_with_tokenizer(records, jobs) -> None:
    """Re-render every job through a real PreTrainedTokenizerFast.apply_chat_template(tokenize=False)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    cache = {}
    mismatches = 0
    for rec, job in zip(records, jobs):
        tokens = {k: v for k, v in job["kwargs"].items() if k in ("bos_token", "eos_token")}
        extra = {k: v for k, v in job["kwargs"].items() if k not in ("bos_token", "eos_token")}
        key = tuple(sorted(tokens.items()))
        if key not in cache:
            tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[unk]": 0}, unk_token="[unk]")), **tokens)
            assert tok.special_tokens_map == tokens, (tok.special_tokens_map, tokens)
            cache[key] = tok
        tok = cache[key]
        conv = job["conv"]
        try:
            out = tok.apply_chat_template(
                conv["messages"], tools=conv.get("tools"), documents=conv.get("documents"), chat_template=job["text"],
                add_generation_prompt=job["agp"], continue_final_message=job["cfm"], tokenize=False, **extra)
            got = {"output": out}
        except Exception as exc:  # noqa: BLE001
            got = {"error": type(exc).__name__}
        want = {"output": rec["output"]} if "output" in rec else {"error": rec["error"]["type"]}
        if got != want:
            mismatches += 1
            print("CROSSCHECK MISMATCH", rec["template"], rec["conversation"], rec["add_generation_prompt"], got, want)
    print(f"crosscheck with PreTrainedTokenizerFast.apply_chat_template: {len(records) - mismatches}/{len(records)} identical")
    if mismatches:
        raise SystemExit("crosscheck failed")


# ---------------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.environ.get("NEKO_SHARED_TEMPLATES", DEFAULT_SHARED))
    ap.add_argument("--crosscheck", action="store_true")
    ap.add_argument("--max-mb", type=float, default=6.0, help="drop six_turn renders of the largest outputs above this")
    args = ap.parse_args(argv)

    if transformers.__version__ != "5.24.0":
        print(f"warning: goldens are meant for transformers 5.24.0, this is {transformers.__version__}", file=sys.stderr)
    install_fixed_clock()
    assert ctu.datetime.now() == FIXED_NOW

    check_hfjs(args.shared)

    templates = discover_templates(args.shared)
    jobs = build_jobs(templates)
    records = [run_job(j) for j in jobs]

    # Size guard: drop six_turn renders of the templates with the largest outputs until under the limit.
    def size(recs):
        return len(json.dumps({"renders": recs}, ensure_ascii=False, indent=1).encode("utf-8"))

    dropped = []
    if size(records) > args.max_mb * 1e6:
        by_template = {}
        for r in records:
            by_template[r["template"]] = by_template.get(r["template"], 0) + len(r.get("output", ""))
        for name, _ in sorted(by_template.items(), key=lambda kv: -kv[1]):
            keep = [(r, j) for r, j in zip(records, jobs) if not (r["template"] == name and r["conversation"] == "six_turn")]
            records, jobs = [r for r, _ in keep], [j for _, j in keep]
            dropped.append(name)
            if size(records) <= args.max_mb * 1e6:
                break

    if args.crosscheck:
        crosscheck_with_tokenizer(records, jobs)

    convs_out = []
    for c in CONVERSATIONS:
        entry = {k: v for k, v in c.items() if k != "continue_final_message"}
        seen = template_messages(c["messages"])
        if seen != c["messages"]:
            entry["template_messages"] = seen
        convs_out.append(entry)

    goldens = {
        "clock": FIXED_NOW.isoformat(),
        "generator": {
            "script": "Tests/Reference/templates/make_template_goldens.py",
            "transformers": transformers.__version__,
            "jinja2": jinja2.__version__,
            "python": sys.version.split()[0],
        },
        "dropped_six_turn_for": dropped,
        "renders": records,
    }
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump(convs_out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(FIXTURES, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(goldens, f, ensure_ascii=False, indent=1)
        f.write("\n")

    n_ok = sum("output" in r for r in records)
    n_err = len(records) - n_ok
    print(f"templates: {len(templates)} ({sum(s == 'shared' for _, s, _ in templates)} shared, "
          f"{sum(s == 'local' for _, s, _ in templates)} local); renders: {len(records)} ({n_ok} ok, {n_err} error)")
    if dropped:
        print("dropped six_turn renders for:", ", ".join(dropped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
