"""Plain words (issue 18): problems under a field say what to do, other fields are named by
their labels, answers by the questions the model declared, policies by their titles."""

from __future__ import annotations

import datetime as dt
import re

from tests.web.test_admin import reviewed_model  # noqa: F401  (fixture)
from tests.web.test_security import log_in


def test_request_form_problems_say_what_to_do_in_one_voice(
    app,
    client,
    make_account,
    reviewed_model,  # noqa: F811
):
    token = log_in(client, make_account("req@example.org"))
    response = client.post(
        "/models/mgh/cxr-review/request-access", data={"csrf_token": token, "fields.purpose": ""}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'id="fields.purpose-error">This is required\.', page)
    assert re.search(r'id="fields.no_reid-error">Tick this box to continue\.', page)
    assert "Fields." not in page and "fields.purpose is" not in page

    client.post(
        "/models/mgh/cxr-review/request-access",
        data={"csrf_token": token, "fields.purpose": "Augment", "fields.no_reid": "yes"},
    )
    admin = app.test_client()
    log_in(admin, make_account("root@example.org", admin=True))
    queue = admin.get("/admin/access-requests").get_data(as_text=True)
    # Answers are labelled by the model's own questions, not by their keys.
    assert "<dt>What will you use the model for?</dt><dd>Augment</dd>" in queue
    assert "<dt>I will not try to re-identify anyone</dt><dd>yes</dd>" in queue
    assert "<dt>purpose</dt>" not in queue


def test_training_problems_name_fields_by_label_and_trainings_by_title(
    client, make_account, registry
):
    from registry.credentials import trainings
    from registry.unit_of_work import unit_of_work

    account = make_account("rita@example.org")
    token = log_in(client, account)
    response = client.post(
        "/account/trainings",
        data={"csrf_token": token, "kind": "citi-dsor", "completed_on": ""},
    )
    page = response.get_data(as_text=True)
    assert response.status_code in (400, 422), response.status_code
    assert "Send either a certificate file or a verification link." in page
    assert "verification_url" not in page.split("<form", 1)[0] + page.split("</form>")[-1]
    assert "Certificate send" not in page

    with unit_of_work(registry.sessions) as db:
        from registry.accounts import services

        user = services.find_user_by_email(db, account.email)
        trainings.submit(
            db,
            registry.blobs,
            user,
            registry.policy.training("citi-dsor"),
            kind="citi-dsor",
            completed_on=(dt.date.today() - dt.timedelta(days=3)).isoformat(),
            verification_url="https://www.citiprogram.org/verify/?k=1",
            certificate=None,
            filename="",
            now=registry.now(),
        )
        db.commit()
    aside = client.get("/account/trainings").get_data(as_text=True)
    assert "CITI Data or Specimens Only Research" in aside
    assert "<dt>citi-dsor</dt>" not in aside
