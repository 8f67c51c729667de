/* libFuzzer target: YAML config documents, the typed getters, the key
 * check and the CSV schema built from a "data" section. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config/csv_schema_yaml.h"
#include "config/yaml_doc.h"
#include "data/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    mfl_yaml_doc_t *doc = mfl_yaml_parse((const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (!doc)
        return 0;
    static const char *const paths[] = { "", "a", "a.b", "a[0]", "a.b[1].c", "data.columns[0].name",
                                         "x[", "[0]", ".a", "a..b", "a[99999999999999999999]" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const char *p = paths[i];
        (void)mfl_yaml_get_string(doc, p, NULL);
        (void)mfl_yaml_get_int(doc, p, 0);
        (void)mfl_yaml_get_double(doc, p, 0);
        (void)mfl_yaml_get_bool(doc, p, false);
        (void)mfl_yaml_get_size(doc, p, 0);
        (void)mfl_yaml_len(doc, p);
        (void)mfl_yaml_key_at(doc, p, 0);
        (void)mfl_yaml_require_int(doc, p);
        const char **items;
        size_t n;
        if (mfl_yaml_get_string_list(doc, p, &items, &n) == 0)
            free(items);
        (void)mfl_yaml_check_keys(doc, p, (const char *[]){ "a", "b", NULL });
    }
    (void)mfl_yaml_error(doc, err, sizeof err);
    mfl_yaml_destroy(&doc);

    /* A fresh doc for the schema (its errors are sticky). */
    doc = mfl_yaml_parse((const char *)data, size, "fuzz.yaml", err, sizeof err);
    mfl_csv_schema_t schema;
    if (doc && mfl_csv_schema_from_yaml(doc, "data", &schema, err, sizeof err) == 0) {
        static const char table[] = "1,2,3\n4,5,6\na,b,c\n";
        mfl_dataset_t *ds = mfl_csv_parse(table, sizeof table - 1, "t.csv", &schema, NULL, err, sizeof err);
        mfl_dataset_destroy(&ds);
        mfl_csv_schema_clear(&schema);
    }
    mfl_yaml_destroy(&doc);
    return 0;
}
