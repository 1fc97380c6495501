"""LinkedIn against data Herald did not write.

Sources:

- ``linkedin-api-client`` 0.3.0, LinkedIn's official Python client (linkedin-developers):
  the headers it sends on versioned APIs, its Rest.li 2.0 encoding of finder parameters and
  URN path keys, and its parsing of ``x-restli-id``. Its client is run against the fake, so the
  fake answers what LinkedIn's own client sends and parses; and the request bodies Herald sends
  are compared with the official client's for the same calls.
- Responses recorded from the real API and published in public issue threads (quoted
  verbatim below, with their source), replayed through Herald.

Not found on PyPI: a published schema of the Posts API (LinkedIn publishes none as a package;
the ``linkedin-api`` package targets the private Voyager API) or recorded fixtures of
``/rest/posts`` (``linkedin-posts`` 0.0.12 ships tests that mock its own client only).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from linkedin_api.clients.restli.client import RestliClient
from linkedin_api.clients.restli.utils.api import build_rest_url, get_restli_request_headers
from linkedin_api.clients.restli.utils.restli import encode_query_params_for_get_requests
from linkedin_api.common import constants

from herald_adapters import linkedin
from tests.platforms.linkedin import AUTHOR, DEFAULT_ACCESS_TOKEN, LinkedInFake

from ._support import payload

VERSION = "202605"


@pytest.fixture
def official(monkeypatch):
    """LinkedIn's client, pointed at a fake."""

    def make(fake: LinkedInFake) -> RestliClient:
        monkeypatch.setattr(constants, "VERSIONED_BASE_URL", f"{fake.url}/rest")
        return RestliClient()

    return make


def test_herald_sends_the_headers_linkedins_client_sends(run_adapter, linkedin_fake):
    run = run_adapter("linkedin", endpoint=linkedin_fake.url, credentials=linkedin_fake.credentials())
    assert run.exit_code == 0, run.output
    [request] = linkedin_fake.requests_to("posts")
    expected = get_restli_request_headers(
        restli_method=constants.RESTLI_METHODS.CREATE, access_token=DEFAULT_ACCESS_TOKEN, version_string=VERSION
    )
    for name in ("Authorization", "LinkedIn-Version", "X-RestLi-Protocol-Version"):
        assert request.headers[name.lower()] == expected[name], name


def test_herald_encodes_finder_parameters_and_urn_keys_like_linkedins_client():
    ours = dict(parse_qsl(linkedin.author_query(AUTHOR), keep_blank_values=True))
    raw_ours = set(linkedin.author_query(AUTHOR).split("&"))
    theirs = encode_query_params_for_get_requests(
        {"q": "author", "author": AUTHOR, "count": linkedin.LOOKUP_LIMIT, "sortBy": "LAST_MODIFIED"}
    )
    assert raw_ours == set(theirs.split("&"))
    assert ours["author"] == AUTHOR
    urn = "urn:li:image:C4E10AQFoyyAjHPMQuQ"
    assert build_rest_url("/images/{id}", path_keys={"id": urn}, version_string=VERSION) == (
        constants.VERSIONED_BASE_URL.removesuffix("/rest") + linkedin.image_path(urn)
    )


def test_linkedins_client_and_herald_send_the_same_calls_to_the_fake(run_adapter, official):
    with LinkedInFake() as fake:
        client = official(fake)
        action = client.action(
            resource_path="/images",
            action_name="initializeUpload",
            action_params={"initializeUploadRequest": {"owner": AUTHOR}},
            access_token=DEFAULT_ACCESS_TOKEN,
            version_string=VERSION,
        )
        assert action.value["image"].startswith("urn:li:image:")
        created = client.create(
            resource_path="/posts",
            entity={
                "author": AUTHOR,
                "commentary": "From the official client",
                "visibility": "PUBLIC",
                "distribution": {"feedDistribution": "MAIN_FEED"},
                "lifecycleState": "PUBLISHED",
            },
            access_token=DEFAULT_ACCESS_TOKEN,
            version_string=VERSION,
        )
        assert created.entity_id == fake.posts[0]["id"]  # parsed from x-restli-id
        found = client.finder(
            resource_path="/posts",
            finder_name="author",
            query_params={"author": AUTHOR, "count": 20, "sortBy": "LAST_MODIFIED"},
            access_token=DEFAULT_ACCESS_TOKEN,
            version_string=VERSION,
        )
        assert [e["id"] for e in found.elements] == [created.entity_id]

        media = [{"url": f"{fake.url}/_herald/media/cover.png", "altText": "A cover"}]
        run = run_adapter(
            "linkedin", endpoint=fake.url, credentials=fake.credentials(), document=payload("Herald", media=media)
        )
        assert run.exit_code == 0, run.output
        theirs_init, ours_init = fake.requests_to("images.action")
        assert ours_init.json == theirs_init.json
        assert ours_init.query == theirs_init.query == {"action": ["initializeUpload"]}
        theirs_post, ours_post = fake.requests_to("posts")
        assert set(theirs_post.json) <= set(ours_post.json)
        assert run.result["postId"] == fake.posts[1]["id"]


# --- responses recorded from the real API ------------------------------------------------------

# Arisamiga/Linkedin-RSS#5 (2023-12-14): a post whose content duplicated an earlier one.
RECORDED_DUPLICATE = (
    '{"errorDetailType":"com.linkedin.common.error.BadRequest","message":"com.linkedin.content.common.exception.'
    'BadRequestResponseException: Content is a duplicate of urn:li:share:7141138937766391808","errorDetails":'
    '{"inputErrors":[{"description":"Duplicate post is detected","input":{},"code":"DUPLICATE_POST"}]},"status":422}'
)
# jclusso/omniauth-linkedin-openid#6 (2024-09-17).
RECORDED_REVOKED = (
    '{"status":401,"serviceErrorCode":65601,"code":"REVOKED_ACCESS_TOKEN",'
    '"message":"The token used in the request has been revoked by the user"}'
)
# xcarpentier/react-native-linkedin#80 (2018-04-26).
RECORDED_INVALID = '{"serviceErrorCode":65600,"message":"Invalid access token","status":401}'


def test_a_recorded_duplicate_names_the_earlier_post(run_adapter, linkedin_fake):
    linkedin_fake.fail("posts", 422, json.loads(RECORDED_DUPLICATE))
    first = run_adapter("linkedin", endpoint=linkedin_fake.url, credentials=linkedin_fake.credentials())
    assert first.result["errorClass"] == "rejected"
    assert "urn:li:share:7141138937766391808" in first.result["message"]
    linkedin_fake.fail("posts", 422, json.loads(RECORDED_DUPLICATE))
    verify = run_adapter(
        "linkedin", endpoint=linkedin_fake.url, credentials=linkedin_fake.credentials(), mode="verify", attempt=2
    )
    assert verify.result["outcome"] == "published" and verify.result["verified"] is True
    assert verify.result["postId"] == "urn:li:share:7141138937766391808"
    assert verify.result["url"] == "https://www.linkedin.com/feed/update/urn:li:share:7141138937766391808/"


@pytest.mark.parametrize("body", [RECORDED_REVOKED, RECORDED_INVALID], ids=["65601", "65600"])
def test_recorded_token_errors_are_auth(body, run_adapter, linkedin_fake):
    linkedin_fake.fail("posts", 401, json.loads(body))
    run = run_adapter("linkedin", endpoint=linkedin_fake.url, credentials=linkedin_fake.credentials())
    assert run.result["errorClass"] == "auth"
    assert json.loads(body)["message"] in run.result["message"]
    assert "60 days" in run.result["message"]
