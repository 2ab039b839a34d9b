#include "config_shdict.h"

#include <stdio.h>
#include <stdlib.h>

#include "config_values.h"

#define SIZE_MIN_BYTES  (8LL * 1024)
#define SIZE_MAX_BYTES  (64LL * 1024 * 1024 * 1024)

static const struct sl_yaml_field shdict_fields[] = {
    SL_YAML_NUM("size", SL_YAML_SIZE, struct sl_shdict_conf, size, SIZE_MIN_BYTES,
                SIZE_MAX_BYTES),
};

/* Names are unique because the mapping's keys are: sl_yaml_is_good_key
 * reports a repeated one at its position. */
void sl_config_shdicts_load(struct sl_yaml *y, yaml_node_t *map, const char *path, void *base)
{
    struct sl_config *cfg = base;
    char sub[SL_YAML_PATH_LEN], buf[80];

    if (!sl_yaml_is_type(y, map, YAML_MAPPING_NODE, path, "a mapping") || sl_yaml_count(map) == 0)
        return;
    cfg->shared_dicts = sl_config_xcalloc(sl_yaml_count(map), sizeof *cfg->shared_dicts);
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *key = yaml_document_get_node(&y->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(&y->doc, p->value);

        if (!sl_yaml_is_good_key(y, map, p, path))
            continue;
        const char *name = (const char *)key->data.scalar.value;
        if (!sl_config_is_valid_name(name)) {
            sl_yaml_error(y, key, "%s: invalid shared dict name %s: use 1 to %d letters, "
                          "digits, '-' or '_'", path, sl_yaml_describe(key, buf, sizeof buf),
                          SL_CONFIG_NAME_MAX);
            continue;
        }
        struct sl_shdict_conf *d = &cfg->shared_dicts[cfg->nshared_dicts++];
        d->name = sl_config_xstrdup(name);
        d->line = (int)key->start_mark.line + 1;
        d->col = (int)key->start_mark.column + 1;
        sl_yaml_join(sub, path, name);
        sl_yaml_walk(y, val, sub, shdict_fields, SL_YAML_COUNTOF(shdict_fields), d);
        if (val->type == YAML_MAPPING_NODE && sl_yaml_get(y, val, "size") == NULL)
            sl_yaml_error(y, val, "%s: missing required key 'size'", sub);
    }
}

void sl_config_shdicts_fini(struct sl_config *cfg)
{
    for (size_t i = 0; i < cfg->nshared_dicts; i++)
        free(cfg->shared_dicts[i].name);
    free(cfg->shared_dicts);
    cfg->shared_dicts = NULL;
    cfg->nshared_dicts = 0;
}
