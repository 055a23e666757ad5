"""Accounts: register, log in and out, profile, password change, API tokens."""

from __future__ import annotations

from flask import render_template

from registry.access.seam import requires
from registry.web import bp


@bp.route("/login", methods=["GET", "POST"])
@requires("account:login")
def login() -> str:
    return render_template("account/login.html")


@bp.route("/register", methods=["GET", "POST"])
@requires("account:register")
def register() -> str:
    return render_template("account/register.html")


@bp.post("/logout")
@requires("public")
def logout() -> str:
    return ""


@bp.get("/account")
@requires("account:read")
def profile() -> str:
    return ""


@bp.get("/account/tokens")
@requires("account:read")
def tokens() -> str:
    return ""
