"""Admin pages for users and institutions: memberships, roles, admin and active flags."""

from __future__ import annotations

from flask import Response, flash, g, redirect, render_template

from registry.access.seam import current_principal, requires
from registry.accounts import institutions
from registry.context import current_registry
from registry.errors import RegistryError
from registry.models.accounts import ROLES
from registry.queues import listing
from registry.web.admin import _done, _failed, admin_tabs
from registry.web.blueprint import bp
from registry.web.forms import checked, text_field
from registry.web.queues import back_to, page_query


@bp.get("/admin/users")
@requires("admin:manage")
def admin_users() -> str:
    query = page_query(listing.USER_STATUSES, default="all")
    return render_template(
        "admin/users.html",
        tabs=admin_tabs(),
        page=listing.users(g.db, query),
        query=query,
        statuses=listing.USER_STATUSES,
        institutions=institutions.list_institutions(g.db),
        roles=ROLES,
    )


def _saved(message: str) -> Response:
    flash(message, "success")
    return redirect(back_to("web.admin_users"))


def _not_saved(error: RegistryError) -> Response:
    g.db.rollback()
    flash(error.message, "error")
    return redirect(back_to("web.admin_users"))


@bp.post("/admin/users/<int:user_id>/membership")
@requires("admin:manage")
def set_membership(user_id: int) -> Response:
    registry = current_registry()
    user = institutions.get_user(g.db, str(user_id))
    slug = text_field("institution", 64)
    try:
        if not slug:
            current = user.membership
            if current is not None:
                institutions.remove_membership(
                    g.db,
                    current.institution,
                    user,
                    actor=current_principal().user,
                    now=registry.now(),
                )
            return _saved(f"{user.email} belongs to no institution now.")
        institution = institutions.get_institution(g.db, slug)
        institutions.set_membership(
            g.db,
            institution,
            user,
            role=text_field("role", 32),
            actor=current_principal().user,
            now=registry.now(),
        )
    except RegistryError as error:
        return _not_saved(error)
    role = user.membership.role if user.membership else ""
    return _saved(f"{user.email} is now {role} at {slug}.")


@bp.post("/admin/users/<int:user_id>/flags")
@requires("admin:manage")
def set_user_flags(user_id: int) -> Response:
    user = institutions.get_user(g.db, str(user_id))
    try:
        institutions.update_user(
            g.db,
            user,
            is_registry_admin=checked("is_registry_admin"),
            is_active=checked("is_active"),
            actor=current_principal().user,
            now=current_registry().now(),
        )
    except RegistryError as error:
        return _not_saved(error)
    return _saved(f"Saved {user.email}.")


@bp.get("/admin/institutions")
@requires("admin:manage")
def admin_institutions() -> str:
    rows = institutions.list_institutions(g.db)
    return render_template(
        "admin/institutions.html",
        tabs=admin_tabs(),
        institutions=rows,
        members={i.id: institutions.list_members(g.db, i) for i in rows},
    )


@bp.post("/admin/institutions")
@requires("admin:manage")
def create_institution() -> Response:
    try:
        institution = institutions.create_institution(
            g.db,
            slug=text_field("slug", 64),
            name=text_field("name", 200),
            actor=current_principal().user,
            now=current_registry().now(),
        )
    except RegistryError as error:
        return _failed(error, "web.admin_institutions")
    return _done(f"Institution {institution.slug} created.", "web.admin_institutions")
