"""The API's OpenAPI 3.1 description, served at GET /api/openapi.json.

Kept as data beside api.py (not generated from it) so that it reads as a contract; a test
holds its paths and methods to the routes the app really has.
"""

from __future__ import annotations

from typing import Any

from kithnet import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in codes}


def _param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_REF = _param("ref", "path", "the node id (16 hex digits) or the device's name", {"type": "string"})
_STR = {"type": "string"}
_NULLSTR = {"type": ["string", "null"]}
_NUM = {"type": "number"}
_VALUE = {"type": ["boolean", "number", "string"]}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_EVENTS = ["state", "event", "availability", "device", "pending", "ota", "firmware", "dropped"]

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "reason"],
        "properties": {
            "error": {"type": "string", "description": "short code, e.g. not_found"},
            "reason": {"type": "string", "description": "what went wrong, for a person"},
        },
    },
    "Capability": {
        "type": "object",
        "required": ["id", "name", "kind", "unit", "writable"],
        "properties": {
            "id": {"type": "integer"},
            "name": _STR,
            "kind": _STR,
            "unit": _STR,
            "writable": {"type": "boolean"},
            "min": {"type": ["number", "null"]},
            "max": {"type": ["number", "null"]},
            "options": {"type": ["array", "null"], "items": _STR},
        },
    },
    "Reading": {
        "type": "object",
        "required": ["value", "ts"],
        "properties": {"value": _VALUE, "ts": {**_NUM, "description": "unix seconds"}},
    },
    "State": {
        "type": "object",
        "description": "capability name -> its latest reading, in a person's units",
        "additionalProperties": _ref("Reading"),
    },
    "Device": {
        "type": "object",
        "required": ["id", "name", "type", "online", "capabilities", "state"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "name": _STR,
            "room": _NULLSTR,
            "type": _NULLSTR,
            "model": _NULLSTR,
            "firmware": _NULLSTR,
            "sleepy": {"type": "boolean"},
            "online": {"type": "boolean"},
            "reason": {"type": "string", "description": "why online is what it is"},
            "last_seen": {"type": ["number", "null"]},
            "address": _NULLSTR,
            "capabilities": {"type": "array", "items": _ref("Capability")},
            "state": _ref("State"),
            "ota": {
                "oneOf": [_ref("OtaJob"), {"type": "null"}],
                "description": "the latest update job, if one was started",
            },
        },
    },
    "Pending": {
        "type": "object",
        "description": "a node that said hello but whose key the gateway does not hold",
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "name": _NULLSTR,
            "type": _NULLSTR,
            "model": _NULLSTR,
            "firmware": _NULLSTR,
            "address": _NULLSTR,
            "first_seen": _NUM,
            "last_seen": _NUM,
            "hellos": {"type": "integer"},
        },
        "additionalProperties": True,
    },
    "Update": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"name": _STR, "room": {**_STR, "description": '"" clears it'}},
    },
    "Adopt": {
        "type": "object",
        "additionalProperties": False,
        "required": ["key"],
        "properties": {
            "key": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
            "name": _STR,
            "room": _STR,
        },
    },
    "NewBTHome": {  # BTHome sensors of other makes (gateway/ble/bthome.py)
        "type": "object",
        "additionalProperties": False,
        "required": ["address"],
        "properties": {
            "address": {"type": "string", "pattern": "^([0-9A-Fa-f]{2}[:-]?){5}[0-9A-Fa-f]{2}$"},
            "bindkey": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
            "insecure": {
                "type": "boolean",
                "description": "an unencrypted device, adopted without a bindkey (spoofable)",
            },
            "name": _STR,
            "room": _STR,
        },
    },
    "NewDevice": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "key"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"},
            "key": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
            "name": _STR,
            "room": _STR,
        },
    },
    "Set": {
        "type": "object",
        "additionalProperties": False,
        "required": ["values"],
        "properties": {
            "values": {
                "type": "object",
                "minProperties": 1,
                "description": 'capability name (or id) -> value: 21.5, true, "cool"',
                "additionalProperties": _VALUE,
            },
            "fade_ms": {"type": "integer", "minimum": 0},
        },
    },
    "NodeSettings": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "interval": {
                "type": "integer",
                "minimum": 5,
                "maximum": 86400,
                "description": "seconds between full reports",
            },
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 63,
                "description": "the name the node gives itself (its hello)",
            },
            "wifi": {
                "type": "object",
                "description": "a BLE node's Wi-Fi credentials, used from its next boot",
                "required": ["ssid"],
                "additionalProperties": False,
                "properties": {
                    "ssid": {"type": "string", "minLength": 1, "maxLength": 32},
                    "password": {"type": "string", "maxLength": 64, "writeOnly": True},
                },
            },
        },
    },
    "NodeConfig": {
        "type": "object",
        "description": "what the node reports of itself: name, interval, and counters "
        "(dropped, buffered, lost, faults, mem_free); never a password",
        "additionalProperties": True,
    },
    "SetResult": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["applied", "queued"]},
            "state": {
                "type": "object",
                "description": "applied: the values the node reports back",
                "additionalProperties": _VALUE,
            },
        },
    },
    "Point": {
        "type": "object",
        "required": ["ts", "value"],
        "properties": {"ts": _NUM, "value": _VALUE},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": _STR,
            "version": _STR,
            "uptime_s": _NUM,
            "nodes": {"type": "integer"},
            "online": {"type": "integer"},
            "pending": {"type": "integer"},
        },
    },
    "Event": {
        "type": "object",
        "description": "one WebSocket text message; the other fields depend on type",
        "required": ["type", "node", "ts"],
        "properties": {
            "type": {"enum": _EVENTS},
            "node": {"type": "string", "description": "node id; empty for the gateway"},
            "ts": _NUM,
        },
        "additionalProperties": True,
    },
}

# OTA: updates over the air (gateway/ota.py)
_OTA_STATES = ["waiting", "receiving", "installing", "trial", "confirmed", "failed", "cancelled"]
_SCHEMAS["OtaJob"] = {
    "type": "object",
    "description": "one node's update, also the data of its ota events",
    "required": ["state", "version", "offset", "size", "percent"],
    "properties": {
        "state": {
            "enum": _OTA_STATES,
            "description": "confirmed, failed (with error) and cancelled are final",
        },
        "version": _STR,
        "from_version": _NULLSTR,
        "offset": {"type": "integer", "description": "bytes the node has"},
        "size": {"type": "integer", "description": "bytes of the bundle as sent"},
        "percent": {"type": "integer"},
        "resumed_from": {"type": ["integer", "null"], "description": "a transfer taken up again"},
        "error": _NULLSTR,
        "started": _NUM,
        "finished": {"type": ["number", "null"]},
    },
}
_SCHEMAS["Rollout"] = {
    "type": "object",
    "required": ["state", "version", "nodes", "results", "skipped"],
    "properties": {
        "state": {"enum": ["running", "confirmed", "failed", "cancelled"]},
        "version": _STR,
        "nodes": {"type": "array", "items": _STR, "description": "ids, in update order"},
        "current": _NULLSTR,
        "results": {"type": "object", "additionalProperties": _STR, "description": "id -> state"},
        "skipped": {"type": "object", "additionalProperties": _STR, "description": "id -> why"},
        "error": _NULLSTR,
        "started": _NUM,
        "finished": {"type": ["number", "null"]},
    },
}
# The firmware shelf (gateway/firmware_shelf.py): bundles in DATA/firmware
_SCHEMAS["Shelved"] = {
    "type": "object",
    "description": "a valid bundle on the firmware shelf",
    "required": ["name", "version", "size", "mtime", "image", "files"],
    "properties": {
        "name": {**_STR, "description": "its file name in DATA/firmware"},
        "version": _STR,
        "size": {"type": "integer", "description": "bytes"},
        "mtime": {**_NUM, "description": "when the file was written, unix seconds"},
        "image": {"type": "boolean", "description": "an ESP32 application image"},
        "files": {"type": "integer", "description": "files in the bundle (0 for an image)"},
    },
}
_SCHEMAS["Firmware"] = {
    "type": "object",
    "required": ["path", "latest", "bundles"],
    "properties": {
        "path": {**_STR, "description": "the shelf's directory on the gateway's machine"},
        "latest": {"oneOf": [_ref("Shelved"), {"type": "null"}], "description": "the newest"},
        "bundles": {"type": "array", "items": _ref("Shelved"), "description": "newest first"},
    },
}
_BUNDLE_BODY = {
    "required": True,
    "content": {
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "the bundle file (kithnet bundle); settings in the query",
        },
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path"],
                "properties": {
                    "path": {**_STR, "description": "a bundle file on the gateway's machine"},
                    "force": {"type": "boolean"},
                    "type": {**_STR, "description": "rollout: every device of this type"},
                    "devices": {"type": "array", "items": _STR, "description": "rollout"},
                },
            }
        },
    },
}
_FORCE = {
    "name": "force",
    "in": "query",
    "required": False,
    "description": "send even a bundle the node runs or rolled back from",
    "schema": {"type": "boolean"},
}

_RESPONSES = {
    f"E{code}": _json(_ref("Error"), text)
    for code, text in {
        400: "bad request: the reason names the field",
        401: "missing or wrong token",
        404: "unknown device, capability or endpoint",
        409: "the node refused the command in its current state",
        413: "the body is too large",
        415: "the body is not of a type this endpoint takes",
        503: "the node is not reachable now",
        504: "the node did not answer in time",
    }.items()
}

_DEVICE = _json(_ref("Device"), "the device")
_NO_SECURITY: list[dict[str, list[str]]] = []

_PATHS: dict[str, Any] = {
    "/api/health": {
        "get": {
            "summary": "Liveness and counts of nodes",
            "security": _NO_SECURITY,
            "responses": {"200": _json(_ref("Health"), "the gateway runs")},
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This description",
            "security": _NO_SECURITY,
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
        }
    },
    "/api/metrics": {
        "get": {
            "summary": "Counters, flat",
            "responses": {
                "200": _json({"type": "object", "additionalProperties": _NUM}, "name -> number"),
                **_errors(401),
            },
        }
    },
    "/api/devices": {
        "get": {
            "summary": "Every adopted device",
            "responses": {
                "200": _json({"type": "array", "items": _ref("Device")}, "devices"),
                **_errors(401),
            },
        },
        "post": {
            "summary": "Adopt a node ahead of time, by its id and key",
            "requestBody": _body(_ref("NewDevice")),
            "responses": {"201": _json(_ref("Device"), "adopted"), **_errors(400, 401)},
        },
    },
    "/api/devices/{ref}": {
        "parameters": [_REF],
        "get": {"summary": "One device", "responses": {"200": _DEVICE, **_errors(401, 404)}},
        "patch": {
            "summary": "Rename a device or move it to another room",
            "requestBody": _body(_ref("Update")),
            "responses": {"200": _DEVICE, **_errors(400, 401, 404)},
        },
        "delete": {
            "summary": "Forget a device (its key and history)",
            "responses": {"204": {"description": "forgotten"}, **_errors(401, 404)},
        },
    },
    "/api/devices/{ref}/state": {
        "parameters": [_REF],
        "get": {
            "summary": "The device's latest readings",
            "responses": {"200": _json(_ref("State"), "state"), **_errors(401, 404)},
        },
    },
    "/api/devices/{ref}/set": {
        "parameters": [_REF],
        "post": {
            "summary": "Command writable capabilities",
            "requestBody": _body(_ref("Set")),
            "responses": {
                "200": _json(_ref("SetResult"), "applied by the node"),
                "202": _json(_ref("SetResult"), "queued for a sleeping node"),
                **_errors(400, 401, 404, 409, 503, 504),
            },
        },
    },
    "/api/devices/{ref}/config": {
        "parameters": [_REF],
        "get": {
            "summary": "The node's own settings, asked of the node (config-get)",
            "responses": {
                "200": _json(_ref("NodeConfig"), "what the node answered"),
                **_errors(401, 404, 409, 503, 504),
            },
        },
        "patch": {
            "summary": "Set some of the node's own settings (config-set), kept by the node",
            "requestBody": _body(_ref("NodeSettings")),
            "responses": {
                "200": _json(_ref("NodeConfig"), "the node's settings after the change"),
                "202": _json(_ref("SetResult"), "queued for a sleeping node (sent when it wakes)"),
                **_errors(400, 401, 404, 409, 503, 504),
            },
        },
    },
    "/api/devices/{ref}/history/{cap}": {
        "parameters": [
            _REF,
            _param("cap", "path", "capability name", _STR),
            _param("since", "query", "from this unix time (inclusive)", _NUM),
            _param("until", "query", "up to this unix time", _NUM),
            _param(
                "limit",
                "query",
                "at most this many points",
                {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
            ),
        ],
        "get": {
            "summary": "Recorded values, oldest first",
            "responses": {
                "200": _json({"type": "array", "items": _ref("Point")}, "points"),
                **_errors(400, 401, 404),
            },
        },
    },
    "/api/pending": {
        "get": {
            "summary": "Nodes that said hello but whose key the gateway does not hold",
            "responses": {
                "200": _json({"type": "array", "items": _ref("Pending")}, "pending nodes"),
                **_errors(401),
            },
        }
    },
    "/api/pending/{id}/adopt": {
        "parameters": [_param("id", "path", "node id, 16 hex digits", _STR)],
        "post": {
            "summary": "Adopt a pending node with its key",
            "requestBody": _body(_ref("Adopt")),
            "responses": {"201": _json(_ref("Device"), "adopted"), **_errors(400, 401, 404)},
        },
    },
    "/api/bthome": {  # BTHome
        "post": {
            "summary": "Adopt a BTHome v2 sensor of another make by its MAC and bindkey",
            "requestBody": _body(_ref("NewBTHome")),
            "responses": {"201": _json(_ref("Device"), "adopted"), **_errors(400, 401)},
        },
    },
    "/api/devices/{ref}/ota": {
        "parameters": [_REF],
        "post": {
            "summary": "Update a node over the air with a bundle",
            "parameters": [_FORCE],
            "requestBody": _BUNDLE_BODY,
            "responses": {
                "202": _json(_ref("OtaJob"), "started; follow it here or by ota events"),
                **_errors(400, 401, 404, 409, 413, 415),
            },
        },
        "get": {
            "summary": "The node's latest update",
            "responses": {"200": _json(_ref("OtaJob"), "the job"), **_errors(401, 404)},
        },
        "delete": {
            "summary": "Cancel the node's update (the node keeps what it has)",
            "responses": {"200": _json(_ref("OtaJob"), "the job"), **_errors(401, 404)},
        },
    },
    "/api/ota": {
        "post": {
            "summary": "Roll a bundle out to several nodes, one at a time",
            "description": (
                "The first node alone, each next one only after the one before confirmed, "
                "none after a failure. Offline and sleepy nodes are skipped."
            ),
            "parameters": [
                _FORCE,
                _param("type", "query", "every device of this type", _STR),
                _param("devices", "query", "comma-separated names or ids, in order", _STR),
            ],
            "requestBody": _BUNDLE_BODY,
            "responses": {
                "202": _json(_ref("Rollout"), "started"),
                **_errors(400, 401, 404, 409, 413, 415),
            },
        },
        "get": {
            "summary": "The latest rollout",
            "responses": {"200": _json(_ref("Rollout"), "the rollout"), **_errors(401, 404)},
        },
        "delete": {
            "summary": "Stop the rollout (the node being updated keeps what it has)",
            "responses": {"200": _json(_ref("Rollout"), "the rollout"), **_errors(401, 404)},
        },
    },
    "/api/firmware": {
        "get": {
            "summary": "The firmware shelf: the bundles in DATA/firmware, newest first",
            "description": (
                "Listed afresh. Files that are not bundles are left out (the gateway logs "
                "why, once). The MQTT update entity offers the newest to every node that "
                "runs an older version."
            ),
            "responses": {"200": _json(_ref("Firmware"), "the shelf"), **_errors(401)},
        }
    },
    "/api/ws": {
        "get": {
            "summary": "WebSocket of events, one JSON text message each, in order",
            "description": (
                "Upgrade to a WebSocket. The token may also be given as ?token=. "
                "?types=state,availability keeps only those event types. Each message is "
                "an Event; a client too slow to keep up first gets "
                '{"type": "dropped", "count": n}.'
            ),
            "parameters": [
                _param("token", "query", "the API token, for clients without headers", _STR),
                _param("types", "query", "comma-separated event types to receive", _STR),
            ],
            "responses": {
                "101": {
                    "description": "switching protocols; then Event messages",
                    "content": {"application/json": {"schema": _ref("Event")}},
                },
                **_errors(400, 401),
            },
        }
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "kithnet gateway",
        "version": __version__,
        "description": "Devices, state, commands and history of a kithnet gateway.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": _PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": _SCHEMAS,
        "responses": _RESPONSES,
    },
}
