/* template.h: the chat-template engine of the llama runner, a Jinja subset.
 *
 * A GGUF model carries its prompt format as a Jinja template
 * (tokenizer.chat_template). The runner parses it once at model load and
 * renders it for every chat request with the request's messages. The
 * environment is the one Hugging Face transformers' apply_chat_template
 * builds: trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
 * no autoescape, the loopcontrols extension (break, continue), a tojson that
 * does not escape HTML or non-ASCII, and the global raise_exception(msg).
 *
 * The subset, briefly (template.c's opening comment lists it in full):
 * {{ }}, {% if/elif/else %}, {% for x[, y] in seq [if cond] %} with loop.*
 * and {% else %}, {% set %} (also ns.attr with namespace()), {# #},
 * break/continue, {% generation %}; whitespace control -, +; Python-like
 * expressions with literals, lists, dicts, attributes, subscripts, slices,
 * arithmetic, comparisons, and/or/not, in, the ternary; the filters, tests,
 * string and dict methods chat templates use. Anything else is refused at
 * parse time with one line naming the construct and its line and column.
 *
 * Rendering is bounded: output by the ceiling of the caller's buffer, loop
 * iterations, evaluation work and value nesting by fixed ceilings. Undefined
 * variables render as empty text (Jinja's default Undefined). */
#ifndef MEDIAD_LLAMA_TEMPLATE_H
#define MEDIAD_LLAMA_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

struct tmpl;

/* Parse src[0..len) (UTF-8, NUL bytes allowed only inside text). On success
 * *out owns the parsed template (free with tmpl_free) and 0 is returned. On
 * a template outside the subset or malformed: -EINVAL, *out = NULL and err
 * holds one line "chat template: line L, column C: <what>". */
int tmpl_parse(struct tmpl **out, const char *src, size_t len, char *err, size_t errlen);

/* Render t with the variables of the object vars (borrowed, never modified;
 * typically messages, add_generation_prompt, bos_token, eos_token, tools),
 * appending to out. Returns 0; -ENOSPC when out's ceiling is reached;
 * -EINVAL for a render error (a type error, a ceiling on loops or work);
 * -EPERM when the template called raise_exception, with its message as
 * err verbatim. On error out holds a partial rendering the caller drops. */
int tmpl_render(const struct tmpl *t, json_t *vars, struct buf *out, char *err, size_t errlen);

void tmpl_free(struct tmpl *t);

#endif
