"""Prompts the model tests share; no app imports, so the GPU tests can run without the web stack."""
from __future__ import annotations

from llm.settings import GenerationOverrides


def ask(fact: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer the question using the context."},
            {"role": "user", "content": f"Context: {fact}\n\nQuestion: {question}"}]


GREEDY = GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=40)
FERRY = ask("The harbour ferry leaves at 7:45 every morning.", "When does the ferry leave?")
# (fact, question, what the answer must contain): batched together, each row must get its own answer
TIMETABLE = [("The ferry leaves at 7:45.", "When does the ferry leave?", "7:45"),
             ("The museum opens at 10:30.", "When does the museum open?", "10:30"),
             ("The bakery closes at 18:15.", "When does the bakery close?", "18:15"),
             ("The train departs at 6:05.", "When does the train depart?", "6:05")]
