"""Conversation analysis of one session: counts and lengths, response times, retrieval hit rate,
the documents it relied on, its keywords, and the user's sentiment turn by turn (VADER, an
offline lexicon model: no download, no network)."""
from __future__ import annotations

import re
import statistics
from collections import Counter
from functools import lru_cache
from typing import Any

from common.text import STOPWORDS
from sessions.repository import SessionView

TOP = 5


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def analyze(session: SessionView) -> dict[str, Any]:
    users = [m for m in session.messages if m.role == "user"]
    answers = [m for m in session.messages if m.role == "assistant"]
    answered = [m for m in answers if (m.details or {}).get("finish_reason") != "no_context"]
    seconds = [float(m.details["seconds"]) for m in answers if m.details and m.details.get("seconds") is not None]
    cited = Counter(source["filename"] for m in answers for source in (m.sources or []))
    return {
        "sessionId": session.id,
        "messages": {"user": len(users), "assistant": len(answers)},
        "average_length_chars": {"user": _mean([len(m.content) for m in users]),
                                 "assistant": _mean([len(m.content) for m in answers])},
        "response_seconds": {"average": _mean(seconds), "max": round(max(seconds), 2) if seconds else None},
        "retrieval_hit_rate": round(len(answered) / len(answers), 3) if answers else None,
        "top_documents": [{"filename": name, "citations": count} for name, count in cited.most_common(TOP)],
        "top_keywords": [word for word, _ in _keywords(users).most_common(10)],
        "sentiment": [{"index": m.position, "compound": round(_analyzer().polarity_scores(m.content)["compound"], 3)}
                      for m in users],
    }


def _keywords(messages: list[Any]) -> Counter[str]:
    words = (word for m in messages for word in re.findall(r"[^\W\d_][\w'-]+", m.content.lower()))
    return Counter(word for word in words if word not in STOPWORDS and len(word) > 2)


def _mean(values: list[float] | list[int]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None
