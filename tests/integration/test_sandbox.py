"""The sandbox provider keeps FreshBooks' rules (it is part of the product)."""
import json
import urllib.parse
import uuid

from checks import check
from web import Browser


def code_for(stack, who):
    """A code issued without a PKCE challenge (the exchanges below send no verifier)."""
    b = Browser(stack)
    _, link = b.start()
    parts = urllib.parse.urlsplit(link)
    q = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if not k.startswith("code_challenge")]
    link = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
    callback = b.approve(link, who)
    return urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["code"][0]


def token(stack, body, form=False):
    if form:
        data, ctype = urllib.parse.urlencode(body).encode(), "application/x-www-form-urlencoded"
    else:
        data, ctype = json.dumps(body).encode(), "application/json"
    return stack.provider("POST", "/auth/oauth/token", data,
                          {"Content-Type": ctype, "Accept": "application/json"})


def grant(stack, **kw):
    body = {"client_id": "fbconnect-sandbox-client", "client_secret": stack.client_secret(),
            "redirect_uri": f"http://127.0.0.1:{stack.http_port}/callback"}
    body.update(kw)
    return body


def test_codes_single_use_and_bound_to_redirect_uri(stack):
    who = f"sbx-{uuid.uuid4().hex[:8]}@example.com"
    code = code_for(stack, who)
    r = token(stack, grant(stack, grant_type="authorization_code", code=code,
                           redirect_uri="http://127.0.0.1:1/elsewhere"))
    check(r.status == 400 and r.json()["error"] == "invalid_grant", f"other redirect URI: {r.status}")
    code = code_for(stack, who)
    r = token(stack, grant(stack, grant_type="authorization_code", code=code), form=True)
    check(r.status == 200, f"form body exchange: {r.status} {r.text}")
    j = r.json()
    check(j["token_type"] == "Bearer" and j["expires_in"] == 43200 and "created_at" in j, f"pair {j}")
    check(len(j["access_token"]) > 400 and j["access_token"].count(".") == 2, "access token not JWT-sized")
    r = token(stack, grant(stack, grant_type="authorization_code", code=code))
    check(r.status == 400 and r.json()["error"] == "invalid_grant", "a code worked twice")
    r = token(stack, dict(grant(stack, grant_type="authorization_code", code=code), client_secret="x"))
    check(r.status == 401 and r.json()["error"] == "invalid_client", "wrong secret accepted")


def test_refresh_tokens_work_once_and_new_pairs_kill_old(stack):
    who = f"sbx-{uuid.uuid4().hex[:8]}@example.com"
    first = token(stack, grant(stack, grant_type="authorization_code", code=code_for(stack, who))).json()
    before = stack.stats()
    second = token(stack, grant(stack, grant_type="refresh_token", refresh_token=first["refresh_token"]))
    check(second.status == 200, f"refresh {second.status}")
    again = token(stack, grant(stack, grant_type="refresh_token", refresh_token=first["refresh_token"]))
    check(again.status == 400 and again.json()["error"] == "invalid_grant", "a refresh token worked twice")
    check(stack.stats()["spent_refresh_presented"] == before["spent_refresh_presented"] + 1,
          "spent refresh token not counted")
    # A new connect for the same user kills the second pair's refresh token too.
    token(stack, grant(stack, grant_type="authorization_code", code=code_for(stack, who)))
    dead = token(stack, grant(stack, grant_type="refresh_token",
                              refresh_token=second.json()["refresh_token"]))
    check(dead.status == 400, "an earlier refresh token survived a newer pair")
    # Access tokens stay valid side by side until revoked.
    me = stack.provider("GET", "/auth/api/v1/users/me",
                        headers={"Authorization": "Bearer " + first["access_token"]})
    check(me.status == 200 and me.json()["response"]["email"] == who, f"users/me {me.status}")
    r = stack.provider("POST", "/auth/oauth/revoke",
                       json.dumps({"client_id": "fbconnect-sandbox-client",
                                   "client_secret": stack.client_secret(),
                                   "token": first["access_token"]}).encode(),
                       {"Content-Type": "application/json"})
    check(r.status == 200 and r.json() == {}, f"revoke {r.status}")
    me = stack.provider("GET", "/auth/api/v1/users/me",
                        headers={"Authorization": "Bearer " + first["access_token"]})
    check(me.status == 401, f"revoked access token still works: {me.status}")
