"""Stream a cited answer from MyAIServ with the official `openai` client.

    MYAISERV_URL=http://127.0.0.1:8000/v1 MYAISERV_API_KEY=mas_... \\
        poetry run python examples/openai_stream.py "How is retrieval effectiveness measured?"
"""

from __future__ import annotations

import os
import sys

import openai


def main() -> None:
    question = " ".join(sys.argv[1:]) or "What problems do users have searching library catalogues?"
    client = openai.OpenAI(
        base_url=os.environ.get("MYAISERV_URL", "http://127.0.0.1:8000/v1"),
        api_key=os.environ["MYAISERV_API_KEY"],
    )
    stream = client.chat.completions.create(
        model=os.environ.get("MYAISERV_MODEL", "myaiserv-rag"),
        messages=[{"role": "user", "content": question}],
        stream=True,
    )
    print(f"Q: {question}\nA: ", end="", flush=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        extra = chunk.model_extra or {}
        if extra.get("citations") is not None:
            print("\n\nSources:")
            for c in extra["citations"]:
                print(f"  [{c['index']}] {c['title']} ({c['source']}) score={c['score']:.4f}")
        if chunk.usage:
            print(f"\nusage: {chunk.usage.prompt_tokens} prompt + "
                  f"{chunk.usage.completion_tokens} completion tokens")  # fmt: skip


if __name__ == "__main__":
    main()
