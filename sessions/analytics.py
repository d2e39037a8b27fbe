"""Conversation analysis of one session: counts and lengths, response times, retrieval hit rate,
the documents it relied on, its keywords, and the user's sentiment turn by turn (VADER, an
offline lexicon model: no download, no network)."""
from __future__ import annotations

import re
import statistics
from collections import Counter
from functools import lru_cache
from typing import Any

from sessions.repository import SessionView

TOP = 5
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves please tell much many also one two get""".split())


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
