from __future__ import annotations

from webapp.responses.schemas import AnswerOut, ResponseOut
from webapp.responses.service import ResponseView


def response_out(view: ResponseView) -> ResponseOut:
    return ResponseOut(
        id=view.id, form_id=view.form_id, form_version=view.form_version, status=view.status,
        submitted_at=view.submitted_at, updated_at=view.updated_at,
        answers=[AnswerOut(question_id=a["question_id"], value=a["value"], text=a["text"]) for a in view.answers],
    )
