/**
 * How list pages are cached. A cached page holds only the ids of its articles and the total (the
 * items come from the per-article summaries), so editing an article invalidates no list; a list is
 * invalidated only by what changes which articles it holds, through these tags:
 *
 * | list                       | tagged                                   | invalidated by                      |
 * |----------------------------|------------------------------------------|-------------------------------------|
 * | all articles               | `list:all`                               | create, delete                      |
 * | `?tag=T`                   | `list:tag:T`                             | create, delete, a tag change (T)    |
 * | `?author=name`             | `list:by:<id>`, `profile:<id>`           | create, delete, that user's rename  |
 * | `?favorited=name`          | `list:favorited-by:<id>`, `profile:<id>` | their (un)favorite, a delete        |
 * | a name nobody has (yet)    | `list:name:<name>`                       | a user taking that name             |
 *
 * Feeds are personal (one per reader) and are not cached as pages; their items are.
 */

export interface ListQuery {
  tag?: string | undefined;
  author?: string | undefined;
  favorited?: string | undefined;
}

const part = (value: string | undefined) => (value === undefined ? '' : `=${encodeURIComponent(value)}`);

/** The cache id of one page of one list. */
export const listId = (q: ListQuery, page: { limit: number; offset: number }) =>
  `list:${part(q.tag)}:${part(q.author?.toLowerCase())}:${part(q.favorited?.toLowerCase())}:${page.limit}:${page.offset}`;

export const listTag = {
  all: 'list:all',
  tag: (tag: string) => `list:tag:${encodeURIComponent(tag)}`,
  by: (userId: string) => `list:by:${userId}`,
  favoritedBy: (userId: string) => `list:favorited-by:${userId}`,
  name: (username: string) => `list:name:${encodeURIComponent(username.toLowerCase())}`,
};

/** The tags to invalidate after a change to which articles some lists hold. */
export function listTagsOf(change: {
  all?: boolean;
  authorId?: string;
  tags?: string[];
  favoritedBy?: string[];
}): string[] {
  return [
    ...(change.all ? [listTag.all] : []),
    ...(change.authorId ? [listTag.by(change.authorId)] : []),
    ...(change.tags ?? []).map(listTag.tag),
    ...(change.favoritedBy ?? []).map(listTag.favoritedBy),
  ];
}
