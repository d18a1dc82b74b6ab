/* api_ops.c: the operator routes: fault injection (/debug/faults, only
 * with ENABLE_FAULT_INJECTION=true) and device resets (/tt-reset-device,
 * /tt-deep-reset), which really restart the workers. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "children.h"
#include "faults.h"
#include "log.h"
#include "server.h"
#include "util.h"
#include "banned.h"

void api_faults(struct server *s, struct hreq *h)
{
	json_t *body, *resp;
	json_error_t jerr;
	const char *wid = NULL, *fault = NULL;
	json_int_t value = 0, count = 0;
	int kind;

	if (h->method == M_DELETE) {
		for (int i = 0; i < s->n_workers; i++)
			children_send(s, &s->workers[i], IPC_FAULT, 0, 0, 0, NULL, 0, -1);
		resp = json_pack("{s:s}", "status", "cleared");
		http_reply_json(s, h, 200, resp);
		json_decref(resp);
		log_warn("fault injection: all faults cleared");
		return;
	}
	body = json_loadb(h->body.data ? h->body.data : "", h->body.len, 0, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		http_reply_err(s, h, AE_BAD_JSON, NULL, "request body must be a JSON object");
		return;
	}
	json_t *jw = json_object_get(body, "worker");
	if (jw && !json_is_string(jw)) {
		json_decref(body);
		http_reply_err(s, h, AE_INVALID_FIELD, "worker", "worker must be a string worker id");
		return;
	}
	wid = json_string_value(jw);
	fault = json_string_value(json_object_get(body, "fault"));
	json_t *jv = json_object_get(body, "value"), *jc = json_object_get(body, "count");
	if ((jv && !json_is_integer(jv)) || (jc && !json_is_integer(jc))) {
		json_decref(body);
		http_reply_err(s, h, AE_INVALID_FIELD, jv && !json_is_integer(jv) ? "value" : "count",
			    "value and count must be integers");
		return;
	}
	value = jv ? json_integer_value(jv) : 0;
	count = jc ? json_integer_value(jc) : 0;
	if (!fault || (kind = fault_parse(fault)) < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "fault must be one of %s", fault_names_joined());
		json_decref(body);
		http_reply_err(s, h, AE_INVALID_FIELD, "fault", msg);
		return;
	}
	int hit = 0;
	json_t *fwd = json_pack("{s:s,s:I,s:I}", "fault", fault, "value", value, "count", count);
	char *text = json_dumps(fwd, JSON_COMPACT);
	for (int i = 0; i < s->n_workers; i++) {
		if (wid && strcmp(wid, s->workers[i].id))
			continue;
		hit++;
		children_send(s, &s->workers[i], IPC_FAULT, 0, 0, 0, text, strlen(text), -1);
	}
	free(text);
	json_decref(fwd);
	if (!hit) {
		json_decref(body);
		http_reply_err(s, h, AE_NOT_FOUND, "worker", "no worker with this id");
		return;
	}
	log_warn("fault injection: %s on worker %s (value %lld, count %lld)", fault,
		 wid ? wid : "all", (long long)value, (long long)count);
	resp = json_pack("{s:s,s:s,s:s,s:I,s:I}", "status", "injected", "worker", wid ? wid : "all",
			 "fault", fault, "value", value, "count", count);
	http_reply_json(s, h, 200, resp);
	json_decref(resp);
	json_decref(body);
}

static void reset(struct server *s, struct hreq *h, int all)
{
	json_t *list = json_array(), *resp;

	if (!all) {
		const char *id = http_query_arg(h, "device_id");
		struct worker *w = NULL;
		if (!id || !*id) {
			json_decref(list);
			http_reply_err(s, h, AE_INVALID_FIELD, "device_id",
				    "device_id query parameter is required");
			return;
		}
		for (int i = 0; i < s->n_workers; i++)
			if (!strcmp(s->workers[i].id, id))
				w = &s->workers[i];
		if (!w) {
			json_decref(list);
			http_reply_err(s, h, AE_NOT_FOUND, "device_id", "no device with this id");
			return;
		}
		children_restart(s, w, "reset requested via /tt-reset-device");
		json_array_append_new(list, json_string(w->id));
	} else {
		for (int i = 0; i < s->n_workers; i++) {
			children_restart(s, &s->workers[i], "reset requested via /tt-deep-reset");
			json_array_append_new(list, json_string(s->workers[i].id));
		}
	}
	resp = json_pack("{s:s,s:o}", "status", "scheduled", "restarting", list);
	http_reply_json(s, h, 200, resp);
	json_decref(resp);
}

void api_reset_device(struct server *s, struct hreq *h)
{
	reset(s, h, 0);
}

void api_deep_reset(struct server *s, struct hreq *h)
{
	reset(s, h, 1);
}
