"""The search endpoint: honey jar search over HTTP, served by Airflow's API server (a plugin's
FastAPI app under /sting), authenticated like Airflow's own REST API (the JWT from
`POST /auth/token`, as `Authorization: Bearer ...`, or the UI's session cookie).

    GET  /sting/api/v1/search?q=...&jar=<id>&jar=<id>&k=5&mode=hybrid&level=document
    POST /sting/api/v1/search   {"query": ..., "jar_ids": [...], "k": 5, "where": {...}, ...}

Answers come from `include.documents.search.search`: the seed's Redis response cache
(`ai:response:{query_hash}`, dropped when ingestion changes a jar), else hybrid retrieval. The
embedding model is loaded once per API server process, on the first uncached search.

Airflow does not authenticate plugin apps (a mounted app inherits none of the API's
dependencies): every route here depends on Airflow's `get_user` itself.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field


def _user():
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


class SearchBody(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    jar_ids: list[str] | None = Field(default=None, description="honey jar ids; all jars when empty")
    k: int = Field(default=5, ge=1, le=100)
    where: dict | None = Field(default=None, description="Chroma metadata filter, e.g. {\"file_type\": \"pdf\"}")
    mode: Literal["hybrid", "vector", "lexical"] = "hybrid"
    level: Literal["document", "chunk"] = "document"
    chunks_per_document: int = Field(default=3, ge=1, le=20)
    use_cache: bool = True


def _run(body: SearchBody) -> dict:
    from include.documents.search import search

    try:
        return search(body.query, body.jar_ids or None, body.k, body.where, body.use_cache, mode=body.mode,
                      level=body.level, chunks_per_document=body.chunks_per_document)
    except ValueError as e:
        raise HTTPException(status_code=422, detail=str(e)) from None


def create_app() -> FastAPI:
    app = FastAPI(title="STING search", version="1",
                  description="Search honey jars: k distinct documents ranked by their best chunks (hybrid "
                              "full text + vectors), or chunks.")
    user = Depends(_user())

    # Plain `def` routes: FastAPI runs them in its thread pool (the search blocks on the model,
    # Chroma, PostgreSQL and Redis).
    @app.get("/api/v1/search", dependencies=[user])
    def search_get(q: Annotated[str, Query(min_length=1, max_length=2000)],
                   jar: Annotated[list[str] | None, Query()] = None,
                   k: Annotated[int, Query(ge=1, le=100)] = 5,
                   mode: Literal["hybrid", "vector", "lexical"] = "hybrid",
                   level: Literal["document", "chunk"] = "document",
                   chunks_per_document: Annotated[int, Query(ge=1, le=20)] = 3,
                   use_cache: bool = True) -> dict:
        return _run(SearchBody(query=q, jar_ids=jar, k=k, mode=mode, level=level,
                               chunks_per_document=chunks_per_document, use_cache=use_cache))

    @app.post("/api/v1/search", dependencies=[user])
    def search_post(body: SearchBody) -> dict:
        return _run(body)

    return app
