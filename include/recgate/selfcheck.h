/* selfcheck.h - the signer checked against Huawei's SDK at every start.
 * SPDX-License-Identifier: MIT
 *
 * A signer that drifts from the cloud's algorithm fails every request in
 * production; so the binary carries the vectors that Huawei's own SDK
 * signer produced (tests/unit/data/sign_vectors.json) and refuses to start
 * when its signer disagrees with any of them.
 */
#ifndef RECGATE_SELFCHECK_H
#define RECGATE_SELFCHECK_H

#include <stddef.h>

/* Checks the signer against the vectors in json (a JSON array as in
 * sign_vectors.json). Returns the number checked, or -1 after writing the
 * first disagreement into err. */
int selfcheck_signer_with(const char *json, size_t len, char *err,
                          size_t err_size);

/* The same with the vectors built into the binary. */
int selfcheck_signer(char *err, size_t err_size);

#endif /* RECGATE_SELFCHECK_H */
