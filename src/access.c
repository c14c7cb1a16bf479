/* access.c - which clients may read which projects.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/access.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "recgate/log.h"

#define TOKEN_MAX 256

typedef struct {
    char *token;
    char *projects; /* comma-separated, or NULL: every allowed project */
} token_entry;

struct access_list {
    const config *cfg;
    bool tokens_required;
    token_entry *entries;
    size_t n;
};

static bool
in_list(const char *list, const char *item)
{
    size_t len = strlen(item);
    const char *p = list;

    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if ((n == 1 && p[0] == '*') ||
            (n == len && strncasecmp(p, item, n) == 0)) {
            return true;
        }
        p += n;
        p += (*p == ',');
    }
    return false;
}

static void
add_entry(access_list *acl, const char *token, const char *projects)
{
    acl->entries = realloc(acl->entries, (acl->n + 1) * sizeof(token_entry));
    acl->entries[acl->n].token = strdup(token);
    acl->entries[acl->n].projects = projects ? strdup(projects) : NULL;
    acl->n++;
}

/* One line: "token [projects]". Blank and '#' lines are skipped. */
static int
parse_line(access_list *acl, char *line)
{
    char *token;
    char *projects;

    line[strcspn(line, "#\r\n")] = '\0';
    token = strtok(line, " \t");
    if (token == NULL) {
        return 0;
    }
    projects = strtok(NULL, " \t");
    if (strtok(NULL, " \t") != NULL || strlen(token) > TOKEN_MAX) {
        return -1;
    }
    add_entry(acl, token, projects);
    return 0;
}

static int
load_tokens(access_list *acl, const char *path, char *err, size_t err_size)
{
    char line[1024];
    struct stat sb;
    int lineno = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, err_size, "%s: cannot open tokens file: %s", path,
                 strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, err_size, "%s: the tokens file is not a regular file",
                 path);
        fclose(f);
        return -1;
    }
    /* Its tokens are secrets, as the credentials are. */
    if (sb.st_mode & S_IROTH) {
        log_msg(LOG_WARN, "tokens file is readable by other users", "path",
                path);
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (parse_line(acl, line) != 0) {
            snprintf(err, err_size, "%s:%d: expected \"token [projects]\"",
                     path, lineno);
            fclose(f);
            return -1;
        }
    }
    if (ferror(f)) {
        snprintf(err, err_size, "%s: cannot read the tokens file: %s", path,
                 strerror(errno));
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

access_list *
access_create(const config *cfg, char *err, size_t err_size)
{
    access_list *acl = calloc(1, sizeof(*acl));

    acl->cfg = cfg;
    if (cfg->tokens_file != NULL && cfg->tokens_file[0] != '\0') {
        acl->tokens_required = true;
        if (load_tokens(acl, cfg->tokens_file, err, err_size) != 0) {
            access_destroy(acl);
            return NULL;
        }
    }
    return acl;
}

void
access_destroy(access_list *acl)
{
    if (acl == NULL) {
        return;
    }
    for (size_t i = 0; i < acl->n; i++) {
        OPENSSL_cleanse(acl->entries[i].token, strlen(acl->entries[i].token));
        free(acl->entries[i].token);
        free(acl->entries[i].projects);
    }
    free(acl->entries);
    free(acl);
}

/* Compares every entry in constant time for a given length, so the time
 * taken says nothing about how much of a token matched. */
static const token_entry *
find_token(const access_list *acl, const char *token)
{
    size_t len = strlen(token);
    const token_entry *found = NULL;

    for (size_t i = 0; i < acl->n; i++) {
        const char *t = acl->entries[i].token;
        if (strlen(t) == len && CRYPTO_memcmp(t, token, len) == 0) {
            found = &acl->entries[i];
        }
    }
    return found;
}

access_verdict
access_check(const access_list *acl, const char *authorization,
             const char *project)
{
    const token_entry *entry = NULL;

    if (acl->tokens_required) {
        if (authorization == NULL ||
            strncasecmp(authorization, "Bearer ", 7) != 0) {
            return ACCESS_UNAUTHORIZED;
        }
        entry = find_token(acl, authorization + 7);
        if (entry == NULL) {
            return ACCESS_UNAUTHORIZED;
        }
    }

    if (!config_project_allowed(acl->cfg, project)) {
        return ACCESS_FORBIDDEN;
    }
    if (entry != NULL && entry->projects != NULL &&
        !in_list(entry->projects, project)) {
        return ACCESS_FORBIDDEN;
    }
    return ACCESS_OK;
}
