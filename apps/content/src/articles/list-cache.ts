/**
 * Which list tags a change invalidates. The lists' ids and tags, and which change invalidates which
 * list, are in @atoll/redis-keys (cache-ids.ts), with every other id and tag of content's cache.
 */
import { cacheTags } from '@atoll/redis-keys';

/** The tags to invalidate after a change to which articles some lists hold. */
export function listTagsOf(change: {
  all?: boolean;
  authorId?: string;
  tags?: string[];
  favoritedBy?: string[];
}): string[] {
  return [
    ...(change.all ? [cacheTags.listAll] : []),
    ...(change.authorId ? [cacheTags.listBy(change.authorId)] : []),
    ...(change.tags ?? []).map(cacheTags.listTag),
    ...(change.favoritedBy ?? []).map(cacheTags.listFavoritedBy),
  ];
}
