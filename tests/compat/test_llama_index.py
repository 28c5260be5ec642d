"""LlamaIndex: ``OpenAILike`` (llama-index-llms-openai-like) pointed at the sidecar."""

from __future__ import annotations

from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike

from tests.compat._common import (
    QUESTION,
    Weather,
    get_weather,
    last,
    weather,
    weather_arguments,
)
from tests.compat._stack import Stack
from tests.compat.conftest import cell


@cell("LlamaIndex OpenAILike", ["text", "tools", "structured"])
def test_openai_like(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    llm = OpenAILike(
        model=fmt,
        api_base=stack.base_url,
        api_key="x",
        is_chat_model=True,
        is_function_calling_model=True,
        max_retries=0,
    )
    reply = stack.reply(fmt)
    ask = [ChatMessage(role="user", content=QUESTION)]
    if feature == "text":
        if stream:
            text = "".join(r.delta or "" for r in llm.stream_chat(ask))
        else:
            text = llm.chat(ask).message.content or ""
        assert text == reply
    elif feature == "tools":
        tool = FunctionTool.from_defaults(fn=get_weather)
        if stream:
            response = last(llm.stream_chat_with_tools([tool], user_msg=QUESTION))
        else:
            response = llm.chat_with_tools([tool], user_msg=QUESTION)
        assert response is not None
        calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
        assert [(c.tool_name, c.tool_kwargs) for c in calls] == [
            ("get_weather", weather_arguments(reply))
        ]
    else:
        prompt = PromptTemplate("What is the weather in {city}?")
        if stream:
            value = last(llm.stream_structured_predict(Weather, prompt, city="Oslo"))
        else:
            value = llm.structured_predict(Weather, prompt, city="Oslo")
        assert Weather.model_validate(value, from_attributes=True) == weather(reply)
