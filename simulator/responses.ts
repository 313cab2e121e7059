/** What a contract handler decided to answer, before any fault spoils it. */
export interface ApiAnswer {
  statusCode: number;
  /** A JSON value, or JSON text already serialized (large status bodies are cached as text). */
  body: unknown;
  headers?: Record<string, string>;
}

export function ok(data: unknown): ApiAnswer {
  return { statusCode: 200, body: { data } };
}

export function apiError(statusCode: number, message: string, headers?: Record<string, string>): ApiAnswer {
  return { statusCode, body: { error: { code: statusCode, message } }, ...(headers === undefined ? {} : { headers }) };
}

export function bodyAsText(body: unknown): string {
  return typeof body === 'string' ? body : JSON.stringify(body);
}

export function bodyAsValue(body: unknown): unknown {
  return typeof body === 'string' ? (JSON.parse(body) as unknown) : structuredClone(body);
}

/** Sets `value` at a dot path (`data.sessions.3.retry_count`), creating objects on the way. */
export function setAtPath(root: unknown, path: string, value: unknown): unknown {
  return atPath(root, path, (parent, key) => {
    parent[key] = value;
  });
}

/** Drops a field, e.g. `data.sessions`: an answer the contract allows but that carries less. */
export function removeAtPath(root: unknown, path: string): unknown {
  return atPath(root, path, (parent, key) => {
    delete parent[key];
  });
}

/** Sends an existing field's parent with the field as `null`; a path whose parent is absent changes nothing. */
export function nullAtPath(root: unknown, path: string): unknown {
  const segments = path.split('.');
  const key = segments.pop() as string;
  let parent: unknown = root;
  for (const segment of segments) parent = isContainer(parent) ? parent[segment] : undefined;
  if (isContainer(parent)) parent[key] = null;
  return root;
}

function atPath(root: unknown, path: string, change: (parent: Record<string, unknown>, key: string) => void): unknown {
  const segments = path.split('.');
  const top: Record<string, unknown> = isContainer(root) ? root : {};
  let node: Record<string, unknown> = top;
  segments.forEach((segment, index) => {
    if (index === segments.length - 1) {
      change(node, segment);
      return;
    }
    const next = node[segment];
    if (!isContainer(next)) node[segment] = {};
    node = node[segment] as Record<string, unknown>;
  });
  return top;
}

function isContainer(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
