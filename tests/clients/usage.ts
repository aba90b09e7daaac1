// What a TypeScript client of LlmChat writes, type-checked (tsc --strict) by
// scripts/client-tests.sh against the types openapi-typescript generates from
// openapi.yaml, which it puts beside a copy of this file as llmchat.d.ts.
import type { components, paths } from "./llmchat";

type JsonBody<Op> = Op extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
type JsonOk<Op, Status extends number> = Op extends {
    responses: { [S in Status]: { content: { "application/json": infer B } } };
}
    ? B
    : never;

export const createSession: JsonBody<paths["/sessions"]["post"]> = {
    title: "Trip to Lisbon",
    model: "smollm2:135m",
    system_prompt: "You are a concise travel assistant.",
};

export const sendMessage: JsonBody<paths["/sessions/{id}/messages"]["post"]> = { content: "Hello" };

export function titles(page: JsonOk<paths["/sessions"]["get"], 200>): string[] {
    return page.items.map((session) => session.title);
}

export function problemCode(problem: components["schemas"]["Problem"]): string {
    return `${problem.status} ${problem.code}: ${problem.detail}`;
}

// The OpenAI-compatible routes: the OpenAI SDKs are their clients, but a
// client generated from this document must still be able to send a request.
export const chatCompletion: JsonBody<paths["/v1/chat/completions"]["post"]> = {
    model: "smollm2:135m",
    messages: [{ role: "user", content: "Hello" }],
    stream: true,
};

export const response: JsonBody<paths["/v1/responses"]["post"]> = {
    model: "smollm2:135m",
    input: "Hello",
    background: true,
};

export function openAiErrorMessage(error: components["schemas"]["OpenAiError"]): string {
    return error.error.message;
}
