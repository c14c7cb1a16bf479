/* selfcheck.c - the signer checked against Huawei's SDK at every start.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/selfcheck.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "recgate/sign.h"

#define VECTOR_HEADERS_MAX 16

/* Generated at build time from tests/unit/data/sign_vectors.json. */
extern const unsigned char sign_vectors_json[];
extern const size_t sign_vectors_json_len;

/* The request-line path of a URL: after the authority, before any
 * query. */
static int
url_path(const char *url, char *buf, size_t size)
{
    const char *p = url ? strstr(url, "://") : NULL;

    p = p ? strchr(p + 3, '/') : NULL;
    if (p == NULL) {
        return -1;
    }
    snprintf(buf, size, "%.*s", (int)strcspn(p, "?"), p);
    return 0;
}

static const char *
field(json_t *v, const char *name)
{
    const char *s = json_string_value(json_object_get(v, name));

    return s ? s : "";
}

static int
check_one(json_t *v, char *err, size_t err_size)
{
    json_t *headers = json_object_get(v, "headers");
    sign_header h[VECTOR_HEADERS_MAX];
    char auth[SIGN_AUTH_MAX];
    char path[512];
    const char *key;
    json_t *value;
    size_t n = 0;

    json_object_foreach(headers, key, value)
    {
        if (n == VECTOR_HEADERS_MAX || !json_is_string(value)) {
            break;
        }
        h[n++] = (sign_header){key, json_string_value(value)};
    }

    if (url_path(field(v, "url"), path, sizeof(path)) != 0 ||
        sign_request(field(v, "ak"), field(v, "sk"), field(v, "method"), path,
                     NULL, h, n, NULL, 0, auth, sizeof(auth)) != 0 ||
        strcmp(auth, field(v, "authorization")) != 0) {
        snprintf(err, err_size,
                 "signing vector \"%s\": the signer "
                 "disagrees with Huawei's SDK",
                 field(v, "name"));
        return -1;
    }
    return 0;
}

int
selfcheck_signer_with(const char *json, size_t len, char *err, size_t err_size)
{
    json_t *vectors = json_loadb(json, len, 0, NULL);
    size_t i;
    json_t *v;
    int checked = 0;

    if (!json_is_array(vectors) || json_array_size(vectors) == 0) {
        snprintf(err, err_size, "no signing vectors to check against");
        json_decref(vectors);
        return -1;
    }
    json_array_foreach(vectors, i, v)
    {
        if (check_one(v, err, err_size) != 0) {
            json_decref(vectors);
            return -1;
        }
        checked++;
    }
    json_decref(vectors);
    return checked;
}

int
selfcheck_signer(char *err, size_t err_size)
{
    return selfcheck_signer_with((const char *)sign_vectors_json,
                                 sign_vectors_json_len, err, err_size);
}
