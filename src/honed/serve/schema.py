"""The request schema /docs shows, made from the run: a table's columns by name with their types, a text
model's texts with their limit. The server still reads requests with its own checks (serve/app.py `check`),
which answer a wrong row in one line naming the column; this is what a client and its generated code see."""

from __future__ import annotations

CELL_TYPES = {"numeric": {"type": ["number", "null"]},
              "date": {"type": ["string", "null"], "format": "date"},
              "category": {"type": ["string", "number", "boolean", "null"]}}
EXAMPLES = 10  # a category's values shown in its description


def row_schema(predictor, columns: list[str]) -> dict:
    """One row: every column the model reads, required (null for a missing cell where the model takes one)."""
    encoder = getattr(predictor.pre, "column_encoder", None)
    if encoder is None:  # numbers only, by name or as a list in column order
        named = {"type": "object", "properties": {c: {"type": "number"} for c in columns}, "required": columns,
                 "additionalProperties": False}
        return {"anyOf": [named, {"type": "array", "items": {"type": "number"}, "minItems": len(columns),
                                  "maxItems": len(columns), "description": f"the {len(columns)} values in column order"}]}
    properties = {}
    for column in encoder.columns:
        described = dict(CELL_TYPES[column.kind])
        if column.kind == "category":
            shown = ", ".join(column.values[:EXAMPLES]) + (", ..." if len(column.values) > EXAMPLES else "")
            described["description"] = f"category ({shown}); an unseen value is answered as the rarer ones are"
        elif column.kind == "date" and column.clock:  # its hour is one of the model's inputs
            described |= {"format": "date-time", "description": "a date and time (ISO 8601; one with a zone or an "
                                                                "offset is read in UTC)"}
        else:
            described["description"] = "a number" if column.kind == "numeric" else "a date (ISO 8601)"
        properties[column.name] = described
    return {"type": "object", "properties": properties, "required": list(properties),
            "description": "extra keys (your own ID) are ignored"}


def request_schema(predictor, columns: list[str] | None, max_items: int, max_chars: int, ids: bool = False) -> dict:
    if predictor.pre.kind == "text":
        body = {"texts": {"type": "array", "items": {"type": "string", "maxLength": max_chars}, "minItems": 1,
                          "maxItems": max_items}}
        required = ["texts"]
    else:
        body = {"rows": {"type": "array", "items": row_schema(predictor, columns or []), "minItems": 1,
                         "maxItems": max_items}}
        required = ["rows"]
        if getattr(predictor.pre, "image_shape", None):  # or the image files themselves
            body["images"] = {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}, "minItems": 1,
                              "maxItems": max_items, "description": "image files, base64-encoded"}
            required = []
    if ids:
        body["ids"] = {"type": "array", "items": {"type": ["string", "integer"]},
                       "description": "one per item, answered beside its prediction"}
    return {"type": "object", "properties": body, "additionalProperties": False} | (
        {"required": required} if required else {"minProperties": 1})


def response_schema(predictor) -> dict:
    """What /predict and /batch_predict answer: a class with each class's probability, or a number."""
    pre = predictor.pre
    if pre.labels:
        names = list(pre.labels.names)
        one = {"type": "object", "required": ["prediction", "probabilities"], "properties": {
            "prediction": {"type": "string", "enum": names},
            "probabilities": {"type": "object", "properties": {n: {"type": "number"} for n in names},
                              "required": names}}}
    else:
        one = {"type": "object", "required": ["prediction"], "properties": {
            "prediction": {"type": "number", "description": "in the target's units"}}}
    return {"type": "object", "required": ["predictions"], "properties": {
        "predictions": {"type": "array", "items": one, "description": "one per item, in the order sent"},
        "ids": {"type": "array", "items": {"type": ["string", "integer"]}, "description": "the ids sent, if any"}}}


def with_run_schemas(openapi: dict, predictor, columns: list[str] | None, limits) -> dict:
    """FastAPI's generated document with the generic request and response bodies replaced by this run's."""
    for path in ("/predict", "/batch_predict"):
        answer = openapi.get("paths", {}).get(path, {}).get("post", {}).get("responses", {}).get("200")
        if answer is not None:
            answer["content"] = {"application/json": {"schema": response_schema(predictor)}}
    schemas = openapi.get("components", {}).get("schemas", {})
    if "PredictRequest" in schemas:
        schemas["PredictRequest"] = request_schema(predictor, columns, limits.max_items, limits.max_chars, ids=True)
    if "BatchRequest" in schemas:
        schemas["BatchRequest"] = request_schema(predictor, columns, limits.max_batch_items, limits.max_chars, ids=True)
    return openapi
