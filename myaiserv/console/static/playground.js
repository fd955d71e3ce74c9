// The playground: the question is sent to /console/playground/answer and the answer
// streams in as server-sent events (the chunks /v1/chat/completions sends). Without this
// script the form posts to /console/playground and the whole answer comes on a page.
// Every piece of text is set with textContent: answers and passages are never HTML.
"use strict";

(() => {
  const form = document.getElementById("ask");
  if (!form || !window.fetch || !window.ReadableStream) return;
  const turns = document.getElementById("turns");
  const question = document.getElementById("question");
  const conversation = document.getElementById("conversation");
  const send = document.getElementById("send");
  const problem = document.getElementById("ask-error");
  const CITATION = /\[(\d+)\]/g;

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const turn = (role, label, text) => {
    const article = el("article", `turn ${role}`);
    article.append(el("h2", "who", label));
    const body = el("div", "text", text);
    article.append(body);
    turns.append(article);
    document.getElementById("empty")?.remove();
    return { article, body };
  };

  const showError = (message) => {
    problem.textContent = message;
    problem.hidden = false;
  };

  // Chunk ids are "<document id>:<n>:<hash>": the colons stay as they are.
  const chunkHref = (citation) =>
    `/console/chunks/${encodeURIComponent(citation.chunk_id).replace(/%3A/gi, ":")}`;
  const titleOf = (citation) => citation.title || citation.source || "Untitled document";

  // The answer again, its [n] markers now links to the passages they cite.
  const linkCitations = (body, text, citations) => {
    const byIndex = new Map(citations.map((c) => [c.index, c]));
    body.textContent = "";
    let at = 0;
    for (const match of text.matchAll(CITATION)) {
      const cited = byIndex.get(Number(match[1]));
      if (!cited) continue;
      body.append(document.createTextNode(text.slice(at, match.index)));
      const link = el("a", "cite", match[0]);
      link.href = chunkHref(cited);
      link.title = titleOf(cited);
      body.append(link);
      at = match.index + match[0].length;
    }
    body.append(document.createTextNode(text.slice(at)));
  };

  const sources = (article, citations) => {
    const seen = new Map();
    for (const c of citations) if (!seen.has(c.index)) seen.set(c.index, c);
    if (!seen.size) return;
    article.append(el("h3", "", "Sources"));
    const list = el("ol", "sources");
    for (const c of [...seen.values()].sort((a, b) => a.index - b.index)) {
      const item = el("li");
      const link = el("a", "", `[${c.index}] ${titleOf(c)}`);
      link.href = chunkHref(c);
      item.append(link, el("blockquote", "", c.text || ""));
      list.append(item);
    }
    article.append(list);
  };

  const continueIn = (id) => {
    if (!id || conversation.value === id) return;
    conversation.value = id;
    const url = new URL(window.location.href);
    url.searchParams.set("conversation", id);
    window.history.replaceState(null, "", url);
    document.getElementById("conversation-runs").href =
      `/console/runs?conversation_id=${encodeURIComponent(id)}`;
    document.getElementById("conversation-links").hidden = false;
  };

  // Each event of the stream: a content delta, our extensions, or an error.
  const handle = (event, answer, state) => {
    if (event.error) {
      state.failed = true;
      const error = el("p", "error", event.error.message || "The answer failed.");
      error.setAttribute("role", "alert");
      answer.article.append(error);
      return;
    }
    const delta = event.choices?.[0]?.delta;
    if (delta?.content) {
      state.text += delta.content;
      answer.body.append(document.createTextNode(delta.content));
    }
    if (event.citations) {
      state.done = true;
      linkCitations(answer.body, state.text, event.citations);
      sources(answer.article, event.citations);
      if (event.run_id) {
        const meta = el("p", "meta");
        const run = el("a", "run", `Run ${event.run_id}`);
        run.href = `/console/runs/${encodeURIComponent(event.run_id)}`;
        meta.append(run);
        answer.article.append(meta);
      }
      continueIn(event.conversation_id);
    }
  };

  const read = async (response, answer) => {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const state = { text: "", done: false, failed: false };
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trim())
          .join("\n");
        if (!data || data === "[DONE]") continue;
        handle(JSON.parse(data), answer, state);
      }
    }
    if (!state.done && !state.failed) showError("The answer stopped before it was complete.");
  };

  const refusal = async (response) => {
    try {
      const body = await response.json();
      return body.detail || body.title || `The request failed (${response.status}).`;
    } catch {
      return `The request failed (${response.status}).`;
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text) {
      showError("Write a question first.");
      return;
    }
    problem.hidden = true;
    send.disabled = true;
    const body = new URLSearchParams(new FormData(form));
    try {
      const response = await fetch(form.dataset.stream, {
        method: "POST",
        headers: {
          "x-csrftoken": Console.csrf(),
          Accept: "text/event-stream, application/json",
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body,
        credentials: "same-origin",
      });
      if (!response.ok || !response.body) {
        showError(await refusal(response));
        return;
      }
      turn("user", "You", text);
      question.value = "";
      const answer = turn("assistant", "Answer", "");
      answer.article.setAttribute("aria-busy", "true");
      try {
        await read(response, answer);
      } finally {
        answer.article.removeAttribute("aria-busy");
      }
    } catch (error) {
      showError(`The answer could not be fetched: ${error.message}`);
    } finally {
      send.disabled = false;
    }
  });
})();
