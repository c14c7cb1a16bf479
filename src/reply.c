/* reply.c - answers to clients: errors in the cloud's JSON shape.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/reply.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>


void
reply_common_headers(struct evhttp_request *req, const char *request_id)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    evhttp_add_header(out, "Content-Type", "application/json");
    evhttp_add_header(out, "X-Request-Id", request_id);
}


static const char *
reason_phrase(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}


void
reply_error(struct evhttp_request *req, int status, const char *code,
            const char *msg, const char *request_id)
{
    struct evbuffer *body = evbuffer_new();
    json_t *obj;
    char *text;

    obj = json_pack("{s:s, s:s, s:s}", "error_code", code, "error_msg", msg,
                    "request_id", request_id);
    text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text != NULL) {
        evbuffer_add(body, text, strlen(text));
    } else {
        evbuffer_add_printf(body, "{\"error_code\":\"%s\"}", code);
    }
    free(text);
    json_decref(obj);

    reply_common_headers(req, request_id);
    evhttp_send_reply(req, status, reason_phrase(status), body);
    evbuffer_free(body);
}
