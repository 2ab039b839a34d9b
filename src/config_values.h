/* Scalar value syntax of the configuration: names, integers, durations,
 * sizes and booleans as written in sluice.yaml, and their display for error
 * messages.
 * Used by config.c and config_yaml.c; addresses are in config.h. */
#ifndef SL_CONFIG_VALUES_H
#define SL_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>

#define SL_CONFIG_NAME_MAX 64

/* Returns whether s is a valid upstream or plugin name: 1 to
 * SL_CONFIG_NAME_MAX letters, digits, '-' or '_'. */
bool sl_config_is_valid_name(const char *s);

/* Parses a decimal integer with an optional sign into out. A value beyond
 * the range of long long saturates, so the caller's range check refuses it.
 * Returns 0, or -1 when s is not an integer (empty, spaces, trailing text). */
int sl_config_parse_int(const char *s, long long *out);

/* Parses a duration into milliseconds: "500ms", "10s", "2m", "1h", or a bare
 * integer meaning seconds. A sign is accepted so that "-5s" reaches the
 * caller's range check; overflow saturates. Returns 0, or -1 on bad syntax. */
int sl_config_parse_duration(const char *s, long long *ms);

/* Parses a size into bytes: a bare integer, or one with a k, m or g suffix
 * (either case, powers of 1024). Sign and overflow as for durations.
 * Returns 0, or -1 on bad syntax. */
int sl_config_parse_size(const char *s, long long *bytes);

/* Parses true/false, yes/no, on/off (any case). Returns 0, or -1. */
int sl_config_parse_bool(const char *s, bool *out);

/* Writes ms in the largest unit that divides it exactly ("24h", "1500ms",
 * "0s"), the way messages show a duration range. */
void sl_config_format_duration(long long ms, char *buf, size_t len);

/* Writes bytes in the largest 1024-based suffix that divides it exactly
 * ("1g", "64k", "100"). */
void sl_config_format_size(long long bytes, char *buf, size_t len);

#endif
