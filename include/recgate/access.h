/* access.h - which clients may read which projects.
 * SPDX-License-Identifier: MIT
 *
 * access.projects limits the projects anyone may read. With
 * access.tokens_file set, a client must also send "Authorization: Bearer
 * <token>" with a token from that file: one per line, optionally followed
 * by the projects that token may read ("token p1,p2"); '#' starts a
 * comment. Tokens are compared in constant time.
 */
#ifndef RECGATE_ACCESS_H
#define RECGATE_ACCESS_H

#include <stddef.h>

#include "recgate/config.h"

typedef struct access_list access_list;

typedef enum {
    ACCESS_OK = 0,
    ACCESS_UNAUTHORIZED, /* no token, or an unknown one: 401 */
    ACCESS_FORBIDDEN,    /* the project is not allowed: 403 */
} access_verdict;

/* Reads the tokens file, if any. Returns NULL after writing the reason
 * into err. */
access_list *access_create(const config *cfg, char *err, size_t err_size);
void access_destroy(access_list *acl);

/* authorization is the client's Authorization header, or NULL. */
access_verdict access_check(const access_list *acl, const char *authorization,
                            const char *project);

#endif /* RECGATE_ACCESS_H */
