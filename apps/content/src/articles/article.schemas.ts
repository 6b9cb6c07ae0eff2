/**
 * Schemas of the RealWorld article, comment, profile and tag routes (the public RealWorld contract,
 * api/openapi.yml of https://github.com/realworld-apps/realworld).
 */
import Type from 'typebox';

const Nullable = (schema: ReturnType<typeof Type.String>) => Type.Union([schema, Type.Null()]);

export const LIMITS = {
  title: 255,
  description: 1000,
  body: 100_000,
  tag: 64,
  tags: 20,
  comment: 10_000,
} as const;

export const Profile = Type.Object({
  username: Type.String(),
  bio: Nullable(Type.String()),
  image: Nullable(Type.String()),
  following: Type.Boolean(),
});
export const ProfileResponse = Type.Object({ profile: Profile });

const ArticleFields = {
  slug: Type.String(),
  title: Type.String(),
  description: Type.String(),
  tagList: Type.Array(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  favorited: Type.Boolean(),
  favoritesCount: Type.Integer(),
  author: Profile,
};
export const Article = Type.Object({ ...ArticleFields, body: Type.String() });
/** List items carry no body (the contract's MultipleArticlesResponse). */
export const ArticleListItem = Type.Object(ArticleFields);

export const SingleArticleResponse = Type.Object({ article: Article });
export const MultipleArticlesResponse = Type.Object({
  articles: Type.Array(ArticleListItem),
  articlesCount: Type.Integer(),
});

const TagList = Type.Array(Type.String({ minLength: 1, maxLength: LIMITS.tag }), { maxItems: LIMITS.tags });

export const NewArticleBody = Type.Object({
  article: Type.Object({
    title: Type.String({ minLength: 1, maxLength: LIMITS.title }),
    description: Type.String({ minLength: 1, maxLength: LIMITS.description }),
    body: Type.String({ minLength: 1, maxLength: LIMITS.body }),
    tagList: Type.Optional(TagList),
  }),
});

export const UpdateArticleBody = Type.Object({
  article: Type.Object({
    title: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.title })),
    description: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.description })),
    body: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.body })),
    tagList: Type.Optional(TagList),
  }),
});

export const ListQuery = Type.Object({
  tag: Type.Optional(Type.String({ maxLength: LIMITS.tag })),
  author: Type.Optional(Type.String({ maxLength: 64 })),
  favorited: Type.Optional(Type.String({ maxLength: 64 })),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  offset: Type.Integer({ minimum: 0, maximum: 100_000, default: 0 }),
});
export const FeedQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  offset: Type.Integer({ minimum: 0, maximum: 100_000, default: 0 }),
});

export const SlugParams = Type.Object({ slug: Type.String({ minLength: 1, maxLength: 300 }) });

export const Comment = Type.Object({
  id: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  body: Type.String(),
  author: Profile,
});
export const NewCommentBody = Type.Object({
  comment: Type.Object({ body: Type.String({ minLength: 1, maxLength: LIMITS.comment }) }),
});
/**
 * A page of an article's comments, oldest first. RealWorld clients send no query and get the first
 * MAX_COMMENTS_PAGE (more than any article of theirs is expected to have); a larger `limit` is a 422.
 */
export const MAX_COMMENTS_PAGE = 500;
export const CommentsQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: MAX_COMMENTS_PAGE, default: MAX_COMMENTS_PAGE }),
  offset: Type.Integer({ minimum: 0, maximum: 100_000, default: 0 }),
});
export const SingleCommentResponse = Type.Object({ comment: Comment });
export const MultipleCommentsResponse = Type.Object({ comments: Type.Array(Comment) });
export const CommentParams = Type.Object({
  slug: Type.String({ minLength: 1, maxLength: 300 }),
  id: Type.Integer({ minimum: 1, maximum: 9_007_199_254_740_991 }),
});

export const TagsResponse = Type.Object({ tags: Type.Array(Type.String()) });

/** atoll's `GET /api/profiles/:username/activity`: a user's recent doings, newest first. */
export const ActivityResponse = Type.Object({
  activity: Type.Array(
    Type.Object({
      type: Type.Union([Type.Literal('article'), Type.Literal('comment'), Type.Literal('favorite')]),
      createdAt: Type.String(),
      article: Type.Object({ slug: Type.String(), title: Type.String(), author: Type.String() }),
      commentId: Type.Optional(Type.Integer()),
    }),
  ),
});
