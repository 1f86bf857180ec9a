"""A small, real OpenID Connect provider for the SSO tests: authlib's authorization server.

Run as its own process (tests/sso/provider.py starts it on a free port):

    python tests/sso/oidc_provider.py --port P --users users.json --client-id ID \
        --client-secret SECRET --redirect-uri http://127.0.0.1:N/accounts/oidc/test/login/callback/

It serves discovery (/.well-known/openid-configuration), the JWKS, an authorize endpoint with
a login form, the token endpoint (authorization code + PKCE, ID token signed RS256) and
userinfo. The users file is re-read at every request, so a test changes someone's groups or
disables them between two sign-ins:

    {"alice": {"password": "...", "email": "...", "name": "...", "groups": ["db-admins"],
               "disabled": false}}

A disabled user who types the right password is refused (error=access_denied back to the
client), as Okta or Keycloak refuse a deactivated account. Only the test suite runs this.
"""

from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.integrations.sqla_oauth2 import (
    OAuth2AuthorizationCodeMixin,
    OAuth2ClientMixin,
    OAuth2TokenMixin,
    create_bearer_token_validator,
    create_query_client_func,
    create_save_token_func,
)
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from sqlalchemy import Column, Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, scoped_session, sessionmaker
from sqlalchemy.pool import StaticPool

LOGIN_FORM = """<!doctype html><html lang="en"><head><title>Test IdP sign-in</title></head>
<body><main><h1>Test identity provider</h1><p role="alert">{error}</p>
<form method="post"><label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Sign in to the test IdP</button></form></main></body></html>"""


class Base(DeclarativeBase):
    pass


class Client(Base, OAuth2ClientMixin):
    __tablename__ = "client"
    id = Column(Integer, primary_key=True)


class AuthorizationCode(Base, OAuth2AuthorizationCodeMixin):
    __tablename__ = "code"
    id = Column(Integer, primary_key=True)
    user_id = Column(String(100))


class Token(Base, OAuth2TokenMixin):
    __tablename__ = "token"
    id = Column(Integer, primary_key=True)
    user_id = Column(String(100))


class Person:
    """A user of the file; authlib asks only for its id."""

    def __init__(self, username: str, record: dict[str, Any]) -> None:
        self.username = username
        self.record = record

    def get_user_id(self) -> str:
        return self.username


class Directory:
    """The users file, read again at every lookup."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def find(self, username: str) -> Person | None:
        records = json.loads(self.path.read_text())
        record = records.get(username)
        return Person(username, record) if isinstance(record, dict) else None

    def claims(self, username: str, scope: str) -> UserInfo:
        person = self.find(username)
        record = person.record if person else {}
        info = UserInfo(sub=f"sub-{username}", preferred_username=username)
        if "profile" in scope:
            info["name"] = record.get("name", username)
        if "email" in scope:
            info["email"] = record.get("email", "")
            info["email_verified"] = True
        info["groups"] = list(record.get("groups", []))
        return info


def create_app(options: argparse.Namespace) -> Flask:
    issuer = f"http://127.0.0.1:{options.port}"
    directory = Directory(Path(options.users))
    signing_key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"})
    engine = create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )
    Base.metadata.create_all(engine)
    session = scoped_session(sessionmaker(bind=engine))
    client = Client(client_id=options.client_id, client_secret=options.client_secret)
    client.client_id_issued_at = int(time.time())
    client.set_client_metadata(
        {
            "redirect_uris": [options.redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "scope": "openid profile email groups",
            "token_endpoint_auth_method": "client_secret_post",
        }
    )
    session.add(client)
    session.commit()

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, oauth_request: Any) -> AuthorizationCode:
            data = oauth_request.payload.data
            item = AuthorizationCode(
                code=code,
                client_id=oauth_request.client.client_id,
                redirect_uri=oauth_request.payload.redirect_uri,
                scope=oauth_request.payload.scope,
                user_id=oauth_request.user.get_user_id(),
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )
            session.add(item)
            session.commit()
            return item

        def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
            item = session.query(AuthorizationCode).filter_by(code=code).first()
            if item and item.client_id == client.client_id and not item.is_expired():
                return item
            return None

        def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
            session.delete(authorization_code)
            session.commit()

        def authenticate_user(self, authorization_code: AuthorizationCode) -> Person | None:
            return directory.find(str(authorization_code.user_id))

    class IdToken(OpenIDCode):
        def exists_nonce(self, nonce: str, oauth_request: Any) -> bool:
            return session.query(AuthorizationCode).filter_by(nonce=nonce).first() is not None

        def resolve_client_private_key(self, client: Any) -> RSAKey:
            return signing_key

        def get_client_algorithm(self, client: Any) -> str:
            return "RS256"

        def get_encode_header(self, client: Any) -> dict[str, str]:
            return {"alg": "RS256", "kid": "test-1"}

        def get_client_claims(self, client: Any) -> dict[str, Any]:
            return {"iss": issuer, "aud": [client.get_client_id()], "exp": int(time.time()) + 300}

        def generate_user_info(self, user: Person, scope: str) -> UserInfo:
            return directory.claims(user.username, scope)

    app = Flask(__name__)
    server = AuthorizationServer(
        app,
        query_client=create_query_client_func(session, Client),
        save_token=create_save_token_func(session, Token),
    )
    server.register_grant(CodeGrant, [IdToken(require_nonce=False), CodeChallenge(required=True)])
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(create_bearer_token_validator(session, Token)())

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify(
            issuer=issuer,
            authorization_endpoint=f"{issuer}/authorize",
            token_endpoint=f"{issuer}/token",
            userinfo_endpoint=f"{issuer}/userinfo",
            jwks_uri=f"{issuer}/jwks",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            scopes_supported=["openid", "profile", "email", "groups"],
            token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
            code_challenge_methods_supported=["S256"],
        )

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(keys=[signing_key.as_dict(private=False)])

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        if request.method == "GET":
            server.get_consent_grant()  # a bad client or redirect URI fails here, before the form
            return LOGIN_FORM.format(error="")
        person = directory.find(request.form.get("username", ""))
        if person is None or person.record.get("password") != request.form.get("password"):
            return LOGIN_FORM.format(error=html.escape("Wrong username or password")), 200
        if person.record.get("disabled"):
            return server.create_authorization_response(grant_user=None)  # access_denied
        return server.create_authorization_response(grant_user=person)

    @app.post("/token")
    def issue_token() -> Any:
        return server.create_token_response()

    @app.route("/userinfo", methods=["GET", "POST"])
    @require_oauth("openid")
    def userinfo() -> Any:
        return jsonify(directory.claims(str(current_token.user_id), current_token.scope))

    @app.teardown_appcontext
    def end_session(error: BaseException | None) -> None:
        session.remove()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--port", "--users", "--client-id", "--client-secret", "--redirect-uri"):
        parser.add_argument(name, required=True)
    options = parser.parse_args()
    app = create_app(options)
    print("ready", flush=True)
    app.run(host="127.0.0.1", port=int(options.port), threaded=False)


if __name__ == "__main__":
    main()
