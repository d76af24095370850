import { connectHttpStream } from '@quiver/http-stream';
import type { Connector } from '@quiver/transport';

/**
 * The HTTP transport as the demo uses it: upstream by POSTs only. The demo serves HTTP/1.1 on its TCP port, where a
 * streaming request body is refused (505), so trying one first would only delay the fallback.
 */
export const connectHttpPosts: Connector = (url, options) =>
  connectHttpStream(url, { ...options, uploadStream: false } as Parameters<typeof connectHttpStream>[1]);
